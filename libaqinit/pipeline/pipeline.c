/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* aq_pipeline: quantize a host's model layer by layer through callbacks (see aqinit.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/options.h"
#include "hessian/hessian_internal.h"
#include "core/comm.h"
#include "pipeline/provenance.h"
#include "quant/quant.h"

#define AQI_PIPELINE_MAX_DIR 4000 /* + "/layer-NNNNN.prov.tmp" fits the 4096-byte path buffers */

struct aq_pipeline {
    aq_context *ctx;
    aq_pipeline_callbacks cb;
    aq_format fmt;
    aq_options *options; /* own copy */
    char *resume_dir;
    int host_status;
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int aq_pipeline_create(aq_pipeline **out, aq_context *ctx, const aq_pipeline_callbacks *callbacks,
                       const aq_format *fmt, const aq_options *options)
{
    const char *fn = "aq_pipeline_create";
    aq_pipeline *p;
    int st;
    if (!out || !ctx)
        return ctx ? aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: out is NULL", fn) : AQ_ERR_INVALID_ARG;
    *out = NULL;
    if (!callbacks || !fmt)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: %s is NULL", fn, callbacks ? "fmt" : "callbacks");
    if (callbacks->struct_size < sizeof(aq_pipeline_callbacks))
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: callbacks.struct_size %u < %zu (set it to sizeof)", fn,
                        (unsigned)callbacks->struct_size, sizeof(aq_pipeline_callbacks));
    if (!callbacks->num_layers || !callbacks->layer_info || !callbacks->get_weight || !callbacks->calibrate
        || !callbacks->put_result)
        return aqi_fail(ctx, AQ_ERR_INVALID_ARG, "%s: every callback is required", fn);
    if ((st = aq_format_check(ctx, fmt, fmt->out_group_size, fmt->in_group_size)) != AQ_OK
        || (st = aqi_check_owners(ctx, fn, NULL, NULL, options)) != AQ_OK)
        return st;
    if (!(p = aqi_calloc(ctx, 1, sizeof *p)))
        return AQ_ERR_NOMEM;
    p->ctx = ctx;
    p->cb = *callbacks;
    p->fmt = *fmt;
    st = options ? aq_options_clone(&p->options, options) : aq_options_create(&p->options, ctx);
    if (st != AQ_OK) {
        aqi_free(ctx, p);
        return st;
    }
    *out = p;
    return AQ_OK;
}

void aq_pipeline_free(aq_pipeline *p)
{
    if (!p)
        return;
    aq_options_free(p->options);
    aqi_free(p->ctx, p->resume_dir);
    aqi_free(p->ctx, p);
}

int aq_pipeline_set_resume_dir(aq_pipeline *p, const char *dir)
{
    char *copy = NULL;
    if (!p)
        return AQ_ERR_INVALID_ARG;
    if (dir) {
        if (strlen(dir) > AQI_PIPELINE_MAX_DIR)
            return aqi_fail(p->ctx, AQ_ERR_INVALID_ARG, "aq_pipeline_set_resume_dir: path longer than %d bytes",
                            AQI_PIPELINE_MAX_DIR);
        if (access(dir, W_OK | X_OK) != 0)
            return aqi_fail(p->ctx, AQ_ERR_IO, "aq_pipeline_set_resume_dir: '%s' is not a writable directory", dir);
        if (!(copy = aqi_alloc(p->ctx, strlen(dir) + 1)))
            return AQ_ERR_NOMEM;
        memcpy(copy, dir, strlen(dir) + 1);
    }
    aqi_free(p->ctx, p->resume_dir);
    p->resume_dir = copy;
    return AQ_OK;
}

int aq_pipeline_host_status(const aq_pipeline *p)
{
    return p ? p->host_status : 0;
}

/* A non-zero host return value becomes AQ_ERR_CALLBACK, the value kept for the caller. */
/* A host callback's result, agreed across ranks: a failure on any rank stops every rank. */
static int host(aq_pipeline *p, int rc, const char *callback, int32_t layer)
{
    int st = AQ_OK;
    if (rc != 0) {
        p->host_status = rc;
        st = aqi_fail(p->ctx, AQ_ERR_CALLBACK, "aq_pipeline_run: the host's %s callback returned %d at layer %d",
                      callback, rc, (int)layer);
    }
    return aqi_comm_agree(p->ctx, "aq_pipeline_run", st);
}

/* With a communicator every rank must see the same @p n values (layer count, shapes, whether a
 * resume file exists): rank 0's are broadcast and compared, AQ_ERR_MISMATCH on every rank if
 * any rank differs (instead of ranks that go separate ways and wait for each other). */
static int check_same_values(aq_pipeline *p, const char *what, int32_t layer, const int64_t *mine, int n)
{
    int64_t first[2];
    int st = AQ_OK;
    memcpy(first, mine, sizeof(int64_t) * (size_t)n);
    st = aqi_comm_broadcast(p->ctx, "aq_pipeline_run", first, (int64_t)sizeof(int64_t) * n, 0);
    if (st == AQ_OK && memcmp(first, mine, sizeof(int64_t) * (size_t)n) != 0)
        st = aqi_fail(p->ctx, AQ_ERR_MISMATCH, "aq_pipeline_run: layer %d: this rank's %s differs from rank 0's "
                      "(every rank must run the same model and see the same resume directory)", (int)layer, what);
    return aqi_comm_agree(p->ctx, "aq_pipeline_run", st);
}

/* With a communicator every rank must quantize the same weight with the same Hessian: rank 0's
 * fingerprints are broadcast and compared (AQ_ERR_MISMATCH on every rank if any differs). */
static int check_same_inputs(aq_pipeline *p, int32_t layer, const aqi_provenance *pv)
{
    uint64_t mine[2] = {pv->weight_hash, pv->hessian_hash}, first[2] = {mine[0], mine[1]};
    int st = aqi_comm_broadcast(p->ctx, "aq_pipeline_run", first, sizeof first, 0);
    if (st == AQ_OK && (first[0] != mine[0] || first[1] != mine[1]))
        st = aqi_fail(p->ctx, AQ_ERR_MISMATCH, "aq_pipeline_run: layer %d: this rank's %s differs from rank 0's "
                      "(get_weight and calibrate must leave the same data on every rank; calibrate may add "
                      "each rank's rows and call aq_hessian_allreduce)", (int)layer,
                      first[0] != mine[0] ? "weight" : "Hessian");
    return aqi_comm_agree(p->ctx, "aq_pipeline_run", st);
}

static void layer_path(const aq_pipeline *p, int32_t layer, char *buf, size_t size, const char *suffix)
{
    snprintf(buf, size, "%s/layer-%05d%s", p->resume_dir, (int)layer, suffix);
}

/* The settings of this run for layer k: everything of its provenance record but the inputs. */
static void describe_run(const aq_pipeline *p, int32_t layer, int64_t rows, int64_t cols, aqi_provenance *pv)
{
    memset(pv, 0, sizeof *pv);
    pv->layer = layer;
    pv->rows = rows;
    pv->cols = cols;
    pv->num_codebooks = p->fmt.num_codebooks;
    pv->bits_per_codebook = p->fmt.bits_per_codebook;
    pv->in_group_size = p->fmt.in_group_size;
    pv->out_group_size = p->fmt.out_group_size;
    pv->scale_mode = p->fmt.scale_mode;
    pv->seed = aq_context_get_seed(p->ctx);
    /* the resume policy does not shape the result */
    aqi_options_describe(&p->options->v, AQ_OPT_PIPELINE_RESUME, pv->options, sizeof pv->options);
    pv->init_error = pv->final_error = NAN;
}

/* Layer k's weight from the host (checked) into a new buffer. */
static int fetch_weight(aq_pipeline *p, int32_t layer, int64_t rows, int64_t cols, float **out)
{
    size_t bytes;
    char what[48];
    int st = aqi_bytes(p->ctx, &bytes, rows * cols, sizeof(float), "layer weight");
    *out = NULL;
    if (st != AQ_OK)
        return st;
    *out = aqi_alloc(p->ctx, bytes);
    if ((st = aqi_comm_agree(p->ctx, "aq_pipeline_run", *out ? AQ_OK : AQ_ERR_NOMEM)) != AQ_OK) {
        aqi_free(p->ctx, *out);
        *out = NULL;
        return st;
    }
    st = host(p, p->cb.get_weight(layer, *out, p->cb.userdata), "get_weight", layer);
    snprintf(what, sizeof what, "the weight of layer %d", (int)layer);
    if (st == AQ_OK)
        st = aqi_comm_agree(p->ctx, "aq_pipeline_run",
                            aqi_check_weights(p->ctx, "aq_pipeline_run", what, *out, rows, cols, cols));
    if (st != AQ_OK) {
        aqi_free(p->ctx, *out);
        *out = NULL;
    }
    return st;
}

/* Layer k's Hessian from the host's calibration. */
static int fetch_hessian(aq_pipeline *p, int32_t layer, int64_t cols, aq_hessian **out)
{
    int st = aqi_comm_agree(p->ctx, "aq_pipeline_run", aq_hessian_create(out, p->ctx, cols));
    if (st == AQ_OK)
        st = host(p, p->cb.calibrate(layer, *out, p->cb.userdata), "calibrate", layer);
    /* st is agreed here (host() agrees), so every rank takes the same branch */
    if (st == AQ_OK)
        st = aqi_comm_agree(p->ctx, "aq_pipeline_run", aq_hessian_num_samples(*out) != 0 ? AQ_OK
                            : aqi_fail(p->ctx, AQ_ERR_INVALID_ARG, "aq_pipeline_run: calibrate added no samples "
                                       "for layer %d", (int)layer));
    if (st != AQ_OK) {
        aq_hessian_free(*out);
        *out = NULL;
    }
    return st;
}

/* Fill @p now with the inputs of layer k that AQ_OPT_PIPELINE_RESUME asks to verify. */
static int fingerprint_inputs(aq_pipeline *p, int32_t layer, int64_t rows, int64_t cols, int check_hessian,
                              aqi_provenance *now)
{
    float *W = NULL;
    aq_hessian *H = NULL;
    int st = fetch_weight(p, layer, rows, cols, &W);
    if (st == AQ_OK)
        now->weight_hash = aqi_fnv1a64(AQI_FNV1A64_INIT, W, sizeof(float) * (size_t)(rows * cols));
    aqi_free(p->ctx, W);
    if (st == AQ_OK && check_hessian && (st = fetch_hessian(p, layer, cols, &H)) == AQ_OK) {
        now->hessian_samples = aq_hessian_num_samples(H);
        now->hessian_hash = aqi_hessian_fingerprint(H);
    }
    aq_hessian_free(H);
    return st;
}

/* A saved layer, if the resume directory has one that this run may reuse (*out NULL if none).
 * It must have the run's shape and format (else AQ_ERR_FORMAT: a stale directory), and under
 * AQ_RESUME_VERIFY[_HESSIAN] a provenance record that matches the run (else AQ_ERR_MISMATCH). */
static int load_finished(aq_pipeline *p, int32_t layer, int64_t rows, int64_t cols, aq_quant **out,
                         aq_layer_report *report)
{
    const int64_t mode = p->options->v.pipeline_resume;
    char path[4096], prov_path[4096], why[1024];
    aqi_provenance saved, now;
    aq_format f;
    int st, have_prov;
    *out = NULL;
    if (!p->resume_dir)
        return AQ_OK;
    layer_path(p, layer, path, sizeof path, ".aqq");
    layer_path(p, layer, prov_path, sizeof prov_path, ".prov");
    {
        const int64_t exists[2] = {access(path, F_OK) == 0, access(prov_path, F_OK) == 0};
        if ((st = check_same_values(p, "resume files", layer, exists, 2)) != AQ_OK)
            return st;
        if (!exists[0])
            return AQ_OK;
    }
    describe_run(p, layer, rows, cols, &now);
    have_prov = access(prov_path, F_OK) == 0;
    if (have_prov && (st = aqi_provenance_load(p->ctx, prov_path, &saved)) != AQ_OK)
        return st;
    if (!have_prov && mode != AQ_RESUME_ACCEPT)
        return aqi_fail(p->ctx, AQ_ERR_MISMATCH, "aq_pipeline_run: %s has no provenance record %s (written by "
                        "an older libaqinit?): set AQ_OPT_PIPELINE_RESUME to AQ_RESUME_ACCEPT to reuse it, or "
                        "remove it", path, prov_path);
    if ((st = aq_quant_load(out, p->ctx, path)) != AQ_OK) {
        aq_context_copy_last_error(p->ctx, why, sizeof why);
        return aqi_fail(p->ctx, st, "aq_pipeline_run: cannot resume layer %d from %s: %s", (int)layer, path, why);
    }
    aq_format_init(&f);
    aq_quant_get_format(&f, *out);
    if (aq_quant_rows(*out) != rows || aq_quant_cols(*out) != cols || f.num_codebooks != p->fmt.num_codebooks
        || f.bits_per_codebook != p->fmt.bits_per_codebook || f.in_group_size != p->fmt.in_group_size
        || f.out_group_size != p->fmt.out_group_size || f.scale_mode != p->fmt.scale_mode)
        st = aqi_fail(p->ctx, AQ_ERR_FORMAT, "aq_pipeline_run: %s does not match layer %d's shape or the format",
                      path, (int)layer);
    else if (mode != AQ_RESUME_ACCEPT)
        st = fingerprint_inputs(p, layer, rows, cols, mode == AQ_RESUME_VERIFY_HESSIAN, &now);
    else if (have_prov) /* accept: compare what is known without asking the host */
        now.weight_hash = saved.weight_hash;
    if (st == AQ_OK && have_prov && aqi_provenance_differs(&saved, &now, mode == AQ_RESUME_VERIFY_HESSIAN, why,
                                                           sizeof why)) {
        if (mode == AQ_RESUME_ACCEPT)
            aqi_log(p->ctx, AQ_LOG_WARN, "pipeline: reusing %s although %s", path, why);
        else
            st = aqi_fail(p->ctx, AQ_ERR_MISMATCH, "aq_pipeline_run: %s cannot be resumed: %s (set "
                          "AQ_OPT_PIPELINE_RESUME to AQ_RESUME_ACCEPT to reuse it anyway)", path, why);
    }
    if (st != AQ_OK) {
        aq_quant_free(*out);
        *out = NULL;
        return st;
    }
    if (have_prov) {
        report->init_error = saved.init_error;
        report->final_error = saved.final_error;
        report->init_seconds = saved.init_seconds;
        report->optimize_seconds = saved.optimize_seconds;
    }
    return AQ_OK;
}

/* The provenance record first, then the layer, each written whole: an interrupted run leaves
 * either no layer file or a layer with its record. */
static int save_finished(aq_pipeline *p, int32_t layer, const aq_quant *q, aqi_provenance *pv,
                         const aq_layer_report *report)
{
    char path[4096];
    int st;
    if (!p->resume_dir || aqi_comm_rank(p->ctx) != 0) /* one writer: rank 0 */
        return AQ_OK;
    pv->init_error = report->init_error;
    pv->final_error = report->final_error;
    pv->init_seconds = report->init_seconds;
    pv->optimize_seconds = report->optimize_seconds;
    layer_path(p, layer, path, sizeof path, ".prov");
    if ((st = aqi_provenance_save(p->ctx, path, pv)) != AQ_OK)
        return st;
    layer_path(p, layer, path, sizeof path, ".aqq");
    return aq_quant_save(q, path); /* itself written to path.tmp and renamed */
}

/* Calibrate, initialise and optimise one layer; @p pv receives the fingerprints of its inputs. */
static int quantize_one(aq_pipeline *p, int32_t layer, int64_t rows, int64_t cols, aq_quant **out,
                        aq_layer_report *report, aqi_provenance *pv)
{
    aq_hessian *H = NULL;
    aq_quant *q = NULL;
    float *W = NULL;
    double t0;
    int st = fetch_weight(p, layer, rows, cols, &W);
    if (st == AQ_OK)
        st = fetch_hessian(p, layer, cols, &H);
    if (st == AQ_OK) {
        pv->weight_hash = aqi_fnv1a64(AQI_FNV1A64_INIT, W, sizeof(float) * (size_t)(rows * cols));
        pv->hessian_samples = aq_hessian_num_samples(H);
        pv->hessian_hash = aqi_hessian_fingerprint(H);
        if ((st = check_same_inputs(p, layer, pv)) == AQ_OK)
            st = aqi_comm_agree(p->ctx, "aq_pipeline_run", aq_quant_create(&q, p->ctx, &p->fmt, rows, cols));
    }
    t0 = now_seconds();
    if (st == AQ_OK)
        st = aq_init(p->ctx, q, W, cols, H, p->options);
    report->init_seconds = now_seconds() - t0;
    if (st == AQ_OK)
        st = aqi_comm_agree(p->ctx, "aq_pipeline_run", aq_quant_output_error(&report->init_error, q, W, cols, H));
    t0 = now_seconds();
    if (st == AQ_OK)
        st = aq_optimize(p->ctx, q, W, cols, H, p->options);
    report->optimize_seconds = now_seconds() - t0;
    if (st == AQ_OK)
        st = aqi_comm_agree(p->ctx, "aq_pipeline_run", aq_quant_output_error(&report->final_error, q, W, cols, H));
    aq_hessian_free(H);
    aqi_free(p->ctx, W);
    if (st != AQ_OK) {
        aq_quant_free(q);
        return st;
    }
    *out = q;
    return AQ_OK;
}

static int run_layer(aq_pipeline *p, int32_t layer, int32_t n_layers)
{
    const char *name = NULL;
    int64_t rows = 0, cols = 0;
    aq_quant *q = NULL;
    aq_layer_report report;
    aqi_provenance pv;
    int st;
    memset(&report, 0, sizeof report);
    report.struct_size = (uint32_t)sizeof report;
    report.layer = layer;
    report.init_error = report.final_error = NAN;
    if ((st = host(p, p->cb.layer_info(layer, &name, &rows, &cols, p->cb.userdata), "layer_info", layer)) != AQ_OK)
        return st;
    {
        const int64_t shape[2] = {rows, cols};
        if ((st = check_same_values(p, "shape", layer, shape, 2)) != AQ_OK)
            return st;
    }
    if ((st = aq_format_check(p->ctx, &p->fmt, rows, cols)) != AQ_OK) {
        char why[512];
        aq_context_copy_last_error(p->ctx, why, sizeof why);
        return aqi_fail(p->ctx, st, "aq_pipeline_run: layer %d (%s, %lld x %lld): %s", (int)layer,
                        name ? name : "?", (long long)rows, (long long)cols, why);
    }
    if ((st = aqi_comm_agree(p->ctx, "aq_pipeline_run", aqi_progress(p->ctx, "pipeline", layer, n_layers, 0, NAN)))
            != AQ_OK)
        return st;
    st = aqi_comm_agree(p->ctx, "aq_pipeline_run", load_finished(p, layer, rows, cols, &q, &report));
    if (st != AQ_OK) {
        aq_quant_free(q);
        return st;
    }
    if (q) {
        report.resumed = 1;
        aqi_log(p->ctx, AQ_LOG_INFO, "pipeline: layer %d (%s) resumed from %s", (int)layer, name ? name : "?",
                p->resume_dir);
    } else {
        describe_run(p, layer, rows, cols, &pv);
        if ((st = quantize_one(p, layer, rows, cols, &q, &report, &pv)) != AQ_OK
            || (st = aqi_comm_agree(p->ctx, "aq_pipeline_run", save_finished(p, layer, q, &pv, &report))) != AQ_OK) {
            aq_quant_free(q);
            return st;
        }
    }
    st = host(p, p->cb.put_result(layer, q, &report, p->cb.userdata), "put_result", layer);
    aq_quant_free(q);
    if (st == AQ_OK)
        st = aqi_comm_agree(p->ctx, "aq_pipeline_run",
                            aqi_progress(p->ctx, "pipeline", layer, n_layers, 1, report.final_error));
    return st;
}

int aq_pipeline_run(aq_pipeline *p)
{
    int32_t n_layers = 0;
    int st;
    if (!p)
        return AQ_ERR_INVALID_ARG;
    p->host_status = 0;
    if ((st = host(p, p->cb.num_layers(&n_layers, p->cb.userdata), "num_layers", -1)) != AQ_OK)
        return st;
    {
        const int64_t count = n_layers;
        if ((st = check_same_values(p, "layer count", -1, &count, 1)) != AQ_OK)
            return st;
    }
    if (n_layers < 0)
        return aqi_fail(p->ctx, AQ_ERR_INVALID_ARG, "aq_pipeline_run: num_layers gave %d", (int)n_layers);
    for (int32_t layer = 0; layer < n_layers && st == AQ_OK; layer++)
        st = run_layer(p, layer, n_layers);
    return st;
}
