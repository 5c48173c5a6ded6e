/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
// A C++17 quantizer on libaqinit, found with find_package(aqinit): one layer through aq_init and
// aq_optimize, then a two-layer "model" through aq_pipeline_run with host callbacks. Exits
// non-zero unless every result is what the API promises.
#include <aqinit.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

struct context_deleter { void operator()(aq_context *c) const { aq_context_free(c); } };
struct quant_deleter { void operator()(aq_quant *q) const { aq_quant_free(q); } };
struct hessian_deleter { void operator()(aq_hessian *h) const { aq_hessian_free(h); } };
struct options_deleter { void operator()(aq_options *o) const { aq_options_free(o); } };
struct pipeline_deleter { void operator()(aq_pipeline *p) const { aq_pipeline_free(p); } };

constexpr int64_t kRows = 64, kCols = 128, kSamples = 1024;

std::vector<float> random_matrix(int64_t rows, int64_t cols, unsigned seed)
{
    std::mt19937 gen(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> m(static_cast<size_t>(rows * cols));
    for (auto &x : m)
        x = normal(gen);
    return m;
}

bool ok(aq_context *ctx, int status, const char *what)
{
    if (status == AQ_OK)
        return true;
    std::fprintf(stderr, "%s: %s (%s)\n", what, aq_strerror(status), aq_context_last_error(ctx));
    return false;
}

// The host side of the pipeline: a model of two layers the host owns.
struct model {
    std::vector<std::string> names{"blocks.0.proj", "blocks.1.proj"};
    std::vector<std::vector<float>> weights;
    std::vector<float> calib = random_matrix(kSamples, kCols, 7);
    std::vector<double> errors;
    bool views_ok = true;

    static int num_layers(int32_t *n, void *ud)
    {
        *n = static_cast<int32_t>(static_cast<model *>(ud)->names.size());
        return 0;
    }
    static int layer_info(int32_t k, const char **name, int64_t *rows, int64_t *cols, void *ud)
    {
        *name = static_cast<model *>(ud)->names[static_cast<size_t>(k)].c_str();
        *rows = kRows;
        *cols = kCols;
        return 0;
    }
    static int get_weight(int32_t k, float *W, void *ud)
    {
        const auto &w = static_cast<model *>(ud)->weights[static_cast<size_t>(k)];
        std::memcpy(W, w.data(), w.size() * sizeof(float));
        return 0;
    }
    static int calibrate(int32_t, aq_hessian *H, void *ud)
    {
        return aq_hessian_add(H, static_cast<model *>(ud)->calib.data(), kSamples, kCols);
    }
    // The quant is const and freed when this returns: read it through the const views, keep
    // what is needed (here the dequantized weight replaces the layer, as a real host would).
    static int put_result(int32_t k, const aq_quant *q, const aq_layer_report *report, void *ud)
    {
        auto *m = static_cast<model *>(ud);
        size_t nbytes = 0, nbooks = 0;
        const void *codes = aq_quant_codes_const(q, &nbytes);
        const float *books = aq_quant_codebooks_const(q, &nbooks);
        m->views_ok = m->views_ok && codes && books && nbytes == kRows * (kCols / 8) * 2 && nbooks == 2 * 16 * 8;
        m->errors.push_back(report->final_error);
        return aq_quant_dequantize(q, m->weights[static_cast<size_t>(k)].data(), kCols);
    }
};

}  // namespace

int main()
{
    aq_context *raw_ctx = nullptr;
    if (aq_context_create(&raw_ctx) != AQ_OK)
        return 1;
    std::unique_ptr<aq_context, context_deleter> ctx(raw_ctx);
    aq_context_set_threads(ctx.get(), 2);

    // One layer: OA-EM initialisation, then optimisation; the error must not rise.
    aq_format fmt;
    aq_format_init(&fmt);
    aq_hessian *rh = nullptr;
    aq_quant *rq = nullptr;
    aq_options *ro = nullptr;
    std::vector<float> X = random_matrix(kSamples, kCols, 3), W = random_matrix(kRows, kCols, 5);
    if (!ok(ctx.get(), aq_format_parse_ctx(ctx.get(), &fmt, "2x4g8"), "parse")
        || !ok(ctx.get(), aq_hessian_create(&rh, ctx.get(), kCols), "hessian"))
        return 1;
    std::unique_ptr<aq_hessian, hessian_deleter> H(rh);
    if (!ok(ctx.get(), aq_hessian_add(H.get(), X.data(), kSamples, kCols), "add")
        || !ok(ctx.get(), aq_quant_create(&rq, ctx.get(), &fmt, kRows, kCols), "quant"))
        return 1;
    std::unique_ptr<aq_quant, quant_deleter> q(rq);
    if (!ok(ctx.get(), aq_options_create(&ro, ctx.get()), "options"))
        return 1;
    std::unique_ptr<aq_options, options_deleter> opt(ro);
    aq_options_set_int(opt.get(), AQ_OPT_INIT_METHOD, AQ_INIT_OA_EM);
    double e_init = 0, e_opt = 0;
    if (!ok(ctx.get(), aq_init(ctx.get(), q.get(), W.data(), kCols, H.get(), opt.get()), "aq_init")
        || !ok(ctx.get(), aq_quant_output_error(&e_init, q.get(), W.data(), kCols, H.get()), "error")
        || !ok(ctx.get(), aq_optimize(ctx.get(), q.get(), W.data(), kCols, H.get(), opt.get()), "aq_optimize")
        || !ok(ctx.get(), aq_quant_output_error(&e_opt, q.get(), W.data(), kCols, H.get()), "error"))
        return 1;
    std::printf("C++17 consumer of libaqinit %s: one layer, error %.5f after init, %.5f after optimize\n",
                aq_version_string(), e_init, e_opt);
    if (!(e_init > 0 && e_init < 1 && e_opt <= e_init))
        return 1;

    // A handle of another context is refused.
    aq_context *raw_other = nullptr;
    aq_context_create(&raw_other);
    std::unique_ptr<aq_context, context_deleter> other(raw_other);
    if (aq_init(other.get(), q.get(), W.data(), kCols, H.get(), nullptr) != AQ_ERR_INVALID_ARG) {
        std::fprintf(stderr, "a quant of another context was accepted\n");
        return 1;
    }

    // The pipeline over the host's two layers.
    model m;
    m.weights = {random_matrix(kRows, kCols, 11), random_matrix(kRows, kCols, 12)};
    const std::vector<std::vector<float>> original = m.weights;
    aq_pipeline_callbacks cb{};
    cb.struct_size = sizeof cb;
    cb.num_layers = model::num_layers;
    cb.layer_info = model::layer_info;
    cb.get_weight = model::get_weight;
    cb.calibrate = model::calibrate;
    cb.put_result = model::put_result;
    cb.userdata = &m;
    aq_pipeline *rp = nullptr;
    if (!ok(ctx.get(), aq_pipeline_create(&rp, ctx.get(), &cb, &fmt, opt.get()), "pipeline"))
        return 1;
    std::unique_ptr<aq_pipeline, pipeline_deleter> p(rp);
    if (!ok(ctx.get(), aq_pipeline_run(p.get()), "aq_pipeline_run"))
        return 1;
    bool replaced = m.weights[0] != original[0] && m.weights[1] != original[1];
    std::printf("pipeline: %zu layers, errors %.5f %.5f, layers replaced %s, const views %s\n", m.errors.size(),
                m.errors.size() > 0 ? m.errors[0] : NAN, m.errors.size() > 1 ? m.errors[1] : NAN,
                replaced ? "yes" : "no", m.views_ok ? "ok" : "WRONG");
    return m.errors.size() == 2 && replaced && m.views_ok && m.errors[0] > 0 && m.errors[0] < 1 ? 0 : 1;
}
