/* SPDX-License-Identifier: MIT */
/* Copyright (c) 2026 The libaqinit developers */
/* Public entry point of the beam search (aqinit.h): one pass over a layer's codes. */
#include "beam/beam.h"

int aq_beam_search(aq_context *ctx, aq_quant *quant, const float *W, int64_t ld,
                   const aq_hessian *H, const aq_options *options)
{
    aqi_layer_session s;
    int st = aqi_layer_session_open(&s, ctx, "aq_beam_search", quant, W, ld, H, options);
    if (st)
        return st;
    aqi_beam_config cfg = {(int32_t)s.v.beam_width, (int32_t)s.v.beam_random_order, 0, 0, 0, NULL, NULL, 0, AQI_BEAM_NN_AUTO, NULL, AQI_BEAM_SELECT_AUTO, 0};
    st = aqi_opt_beam_pass(&s.layer, &s.work, &cfg, NULL, NULL);
    return aqi_layer_session_close(&s, ctx, quant, st);
}
