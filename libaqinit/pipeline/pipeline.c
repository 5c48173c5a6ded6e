/* aq_pipeline: quantize a host's model layer by layer through callbacks (see aqinit.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/options.h"
#include "quant/quant.h"

#define AQI_PIPELINE_MAX_DIR 4000 /* + "/layer-NNNNN.aqq.tmp" fits the 4096-byte path buffers */

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
    if ((st = aq_format_check(ctx, fmt, fmt->out_group_size, fmt->in_group_size)) != AQ_OK)
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
static int host(aq_pipeline *p, int rc, const char *callback, int32_t layer)
{
    if (rc == 0)
        return AQ_OK;
    p->host_status = rc;
    return aqi_fail(p->ctx, AQ_ERR_CALLBACK, "aq_pipeline_run: the host's %s callback returned %d at layer %d",
                    callback, rc, (int)layer);
}

static void layer_path(const aq_pipeline *p, int32_t layer, char *buf, size_t size, const char *suffix)
{
    snprintf(buf, size, "%s/layer-%05d.aqq%s", p->resume_dir, (int)layer, suffix);
}

/* A saved layer must have the run's shape and format; anything else is a stale directory. */
static int load_finished(aq_pipeline *p, int32_t layer, int64_t rows, int64_t cols, aq_quant **out)
{
    char path[4096];
    aq_format f;
    int st;
    *out = NULL;
    if (!p->resume_dir)
        return AQ_OK;
    layer_path(p, layer, path, sizeof path, "");
    if (access(path, F_OK) != 0)
        return AQ_OK;
    if ((st = aq_quant_load(out, p->ctx, path)) != AQ_OK)
        return st;
    aq_format_init(&f);
    aq_quant_get_format(&f, *out);
    if (aq_quant_rows(*out) != rows || aq_quant_cols(*out) != cols || f.num_codebooks != p->fmt.num_codebooks
        || f.bits_per_codebook != p->fmt.bits_per_codebook || f.in_group_size != p->fmt.in_group_size
        || f.out_group_size != p->fmt.out_group_size || f.scale_mode != p->fmt.scale_mode) {
        aq_quant_free(*out);
        *out = NULL;
        return aqi_fail(p->ctx, AQ_ERR_FORMAT, "aq_pipeline_run: %s does not match layer %d's shape or the format",
                        path, (int)layer);
    }
    return AQ_OK;
}

/* Write to a temporary name, then rename: an interrupted run never leaves a partial layer. */
static int save_finished(aq_pipeline *p, int32_t layer, const aq_quant *q)
{
    char path[4096], tmp[4096];
    int st;
    if (!p->resume_dir)
        return AQ_OK;
    layer_path(p, layer, path, sizeof path, "");
    layer_path(p, layer, tmp, sizeof tmp, ".tmp");
    if ((st = aq_quant_save(q, tmp)) != AQ_OK)
        return st;
    if (rename(tmp, path) != 0) {
        remove(tmp);
        return aqi_fail(p->ctx, AQ_ERR_IO, "aq_pipeline_run: cannot rename %s", tmp);
    }
    return AQ_OK;
}

/* Calibrate, initialise and optimise one layer. */
static int quantize_one(aq_pipeline *p, int32_t layer, int64_t rows, int64_t cols, aq_quant **out,
                        aq_layer_report *report)
{
    aq_hessian *H = NULL;
    aq_quant *q = NULL;
    float *W = NULL;
    size_t bytes;
    double t0;
    int st = aqi_bytes(p->ctx, &bytes, rows * cols, sizeof(float), "layer weight");
    if (st == AQ_OK && !(W = aqi_alloc(p->ctx, bytes)))
        st = AQ_ERR_NOMEM;
    if (st == AQ_OK)
        st = host(p, p->cb.get_weight(layer, W, p->cb.userdata), "get_weight", layer);
    if (st == AQ_OK) {
        char what[48];
        snprintf(what, sizeof what, "the weight of layer %d", (int)layer);
        st = aqi_check_weights(p->ctx, "aq_pipeline_run", what, W, rows, cols, cols);
    }
    if (st == AQ_OK)
        st = aq_hessian_create(&H, p->ctx, cols);
    if (st == AQ_OK)
        st = host(p, p->cb.calibrate(layer, H, p->cb.userdata), "calibrate", layer);
    if (st == AQ_OK && aq_hessian_num_samples(H) == 0)
        st = aqi_fail(p->ctx, AQ_ERR_INVALID_ARG, "aq_pipeline_run: calibrate added no samples for layer %d",
                      (int)layer);
    if (st == AQ_OK)
        st = aq_quant_create(&q, p->ctx, &p->fmt, rows, cols);
    t0 = now_seconds();
    if (st == AQ_OK)
        st = aq_init(p->ctx, q, W, cols, H, p->options);
    report->init_seconds = now_seconds() - t0;
    if (st == AQ_OK)
        st = aq_quant_output_error(&report->init_error, q, W, cols, H);
    t0 = now_seconds();
    if (st == AQ_OK)
        st = aq_optimize(p->ctx, q, W, cols, H, p->options);
    report->optimize_seconds = now_seconds() - t0;
    if (st == AQ_OK)
        st = aq_quant_output_error(&report->final_error, q, W, cols, H);
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
    int st;
    memset(&report, 0, sizeof report);
    report.struct_size = (uint32_t)sizeof report;
    report.layer = layer;
    report.init_error = report.final_error = NAN;
    if ((st = host(p, p->cb.layer_info(layer, &name, &rows, &cols, p->cb.userdata), "layer_info", layer)) != AQ_OK)
        return st;
    if ((st = aq_format_check(p->ctx, &p->fmt, rows, cols)) != AQ_OK) {
        char why[512];
        aq_context_copy_last_error(p->ctx, why, sizeof why);
        return aqi_fail(p->ctx, st, "aq_pipeline_run: layer %d (%s, %lld x %lld): %s", (int)layer,
                        name ? name : "?", (long long)rows, (long long)cols, why);
    }
    if ((st = aqi_progress(p->ctx, "pipeline", layer, n_layers, 0, NAN)) != AQ_OK
        || (st = load_finished(p, layer, rows, cols, &q)) != AQ_OK)
        return st;
    if (q) {
        report.resumed = 1;
        aqi_log(p->ctx, AQ_LOG_INFO, "pipeline: layer %d (%s) resumed from %s", (int)layer, name ? name : "?",
                p->resume_dir);
    } else if ((st = quantize_one(p, layer, rows, cols, &q, &report)) != AQ_OK
               || (st = save_finished(p, layer, q)) != AQ_OK) {
        aq_quant_free(q);
        return st;
    }
    st = host(p, p->cb.put_result(layer, q, &report, p->cb.userdata), "put_result", layer);
    aq_quant_free(q);
    if (st == AQ_OK)
        st = aqi_progress(p->ctx, "pipeline", layer, n_layers, 1, report.final_error);
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
    if (n_layers < 0)
        return aqi_fail(p->ctx, AQ_ERR_INVALID_ARG, "aq_pipeline_run: num_layers gave %d", (int)n_layers);
    for (int32_t layer = 0; layer < n_layers && st == AQ_OK; layer++)
        st = run_layer(p, layer, n_layers);
    return st;
}
