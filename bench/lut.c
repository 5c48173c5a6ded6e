/* bench-lut: aq_quant_matvec (LUT kernels) against fp32 cblas_sgemv of the same shape, in the
 * same run.
 *
 *   bench-lut [--reps N] [--threads T]
 *
 * Shapes: the benchmark model's layers (288×288, 768×288, 288×768), 4096×4096 and 4096×14336
 * (rows × cols), at 2x8 g8 and 1x16 g8, random codes, codebooks and scales. For each: median
 * time per mat-vec of the best kernel, of the portable kernel, and of sgemv on the fp32 matrix;
 * ratio = sgemv time / ours (> 1: the quantized mat-vec is faster). Prints; asserts nothing. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lut.h"

#include "bench_util.h"

#define MAX_REPS 101


static uint64_t lcg = 12345;
static float uniform(void)
{
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(lcg >> 11) * 0x1.0p-53);
}

static void bench_shape(aq_context *ctx, int64_t rows, int64_t cols, const char *format, int reps)
{
    aq_format f;
    aq_quant *q = NULL;
    size_t nb, nc, ns;
    aq_format_init(&f);
    if (aq_format_parse(&f, format) != AQ_OK || aq_quant_create(&q, ctx, &f, rows, cols) != AQ_OK) {
        fprintf(stderr, "cannot create %s %lldx%lld\n", format, (long long)rows, (long long)cols);
        return;
    }
    uint8_t *codes = aq_quant_codes(q, &nb);
    float *cb = aq_quant_codebooks(q, &nc), *sc = aq_quant_scales(q, &ns);
    for (size_t i = 0; i < nb; i++)
        codes[i] = (uint8_t)(uniform() * 256); /* any byte pattern is a valid code for B = 8 or 16 */
    for (size_t i = 0; i < nc; i++)
        cb[i] = uniform() - 0.5f;
    for (size_t i = 0; i < ns; i++)
        sc[i] = 1.0f;
    float *W = malloc(sizeof(float) * (size_t)(rows * cols)), *x = malloc(sizeof(float) * (size_t)cols);
    float *y = malloc(sizeof(float) * (size_t)rows);
    aq_quant_dequantize(q, W, cols);
    for (int64_t i = 0; i < cols; i++)
        x[i] = uniform() - 0.5f;
    double t_best[MAX_REPS], t_port[MAX_REPS], t_gemv[MAX_REPS];
    const int best = aqi_lut_best_isa();
    for (int r = -1; r < reps; r++) { /* interleaved; r = −1 warms up */
        double t0 = now_seconds();
        aqi_quant_matvec_isa(q, x, y, best, 0);
        double t1 = now_seconds();
        aqi_quant_matvec_isa(q, x, y, AQI_ISA_PORTABLE, 0);
        double t2 = now_seconds();
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)rows, (int)cols, 1.0f, W, (int)cols, x, 1, 0.0f, y, 1);
        double t3 = now_seconds();
        if (r >= 0) {
            t_best[r] = t1 - t0;
            t_port[r] = t2 - t1;
            t_gemv[r] = t3 - t2;
        }
    }
    const double b = median(t_best, reps), p = median(t_port, reps), g = median(t_gemv, reps);
    const char *path = (int64_t)q->K * q->go <= rows ? (best == AQI_ISA_AVX512 ? "lut avx512" : best == AQI_ISA_AVX2 ? "lut avx2" : "lut")
                                                     : "direct";
    printf("  %5lldx%-5lld %-7s %-10s  ours %9.1f us  portable %9.1f us  sgemv %9.1f us   ratio %5.2f (portable %5.2f)\n",
           (long long)rows, (long long)cols, format, path, b * 1e6, p * 1e6, g * 1e6, g / b, g / p);
    free(W);
    free(x);
    free(y);
    aq_quant_free(q);
}

int main(int argc, char **argv)
{
    int reps = 21, threads = 1;
    aq_context *ctx = NULL;
    for (int a = 1; a + 1 < argc; a += 2) {
        if (!strcmp(argv[a], "--reps"))
            reps = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--threads"))
            threads = atoi(argv[a + 1]);
    }
    if (reps < 1 || reps > MAX_REPS)
        reps = 21;
    if (aq_context_create(&ctx) != AQ_OK || aq_context_set_threads(ctx, threads) != AQ_OK)
        return 1;
    printf("aq_quant_matvec vs cblas_sgemv (fp32), %d library thread(s), OpenBLAS default threads, median of %d\n",
           aq_context_get_threads(ctx), reps);
    static const int64_t shapes[][2] = {{288, 288}, {768, 288}, {288, 768}, {4096, 4096}, {4096, 14336}};
    static const char *formats[] = {"2x8g8", "1x16g8"};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (size_t f = 0; f < 2; f++)
            bench_shape(ctx, shapes[s][0], shapes[s][1], formats[f], reps);
    aq_context_free(ctx);
    return 0;
}
