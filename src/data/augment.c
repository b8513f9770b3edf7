/* Augmentation and normalization of one image, and the seed derivation that makes every
 * epoch's order and every batch's augmentation reproducible from (seed, epoch, batch).
 *
 * Same semantics as torchvision's RandomCrop(size, padding=pad) (zero padding of the uint8
 * image) followed by RandomHorizontalFlip() and ToTensor() + Normalize(mean, std):
 *     x = (float(pixel) / 255 - mean[ch]) / std[ch]      (float32, same operation order) */
#include "data/data_internal.h"

#include <string.h>

void lt_augment_config_default(lt_augment_config *a) {
    memset(a, 0, sizeof *a);
    for (int ch = 0; ch < LT_DATA_MAX_CHANNELS; ch++) a->std[ch] = 1.0f;
}

void lt_augment_config_cifar(lt_augment_config *a) {
    /* The CIFAR statistics of the LDAM-DRW / weight-balancing code. */
    static const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.2023f, 0.1994f, 0.2010f};
    lt_augment_config_default(a);
    a->pad = 4;
    a->hflip = 1;
    for (int ch = 0; ch < 3; ch++) {
        a->mean[ch] = mean[ch];
        a->std[ch] = std[ch];
    }
}

void lt_augment_image(const uint8_t *img, int64_t h, int64_t w, int64_t c, const lt_augment_config *a,
                      lt_rng *rng, float *out) {
    int64_t pad = rng ? a->pad : 0, dy = 0, dx = 0;
    int flip = 0;
    if (pad > 0) {
        dy = (int64_t)lt_rng_below(rng, (uint64_t)(2 * pad + 1));
        dx = (int64_t)lt_rng_below(rng, (uint64_t)(2 * pad + 1));
    }
    if (rng && a->hflip) flip = lt_rng_u32(rng) >> 31;   /* probability 1/2 */
    float zero[LT_DATA_MAX_CHANNELS];   /* a padded pixel after normalization */
    for (int64_t ch = 0; ch < c; ch++) zero[ch] = (0.0f - a->mean[ch]) / a->std[ch];
    for (int64_t y = 0; y < h; y++) {
        int64_t sy = y + dy - pad;
        float *o = out + y * w * c;
        if (sy < 0 || sy >= h) {
            for (int64_t x = 0; x < w; x++)
                for (int64_t ch = 0; ch < c; ch++) o[x * c + ch] = zero[ch];
            continue;
        }
        const uint8_t *row = img + sy * w * c;
        if (!flip && pad == 0 && c == 1) {   /* the common evaluation / FMNIST case */
            for (int64_t x = 0; x < w; x++) o[x] = ((float)row[x] / 255.0f - a->mean[0]) / a->std[0];
            continue;
        }
        for (int64_t x = 0; x < w; x++) {
            int64_t sx = (flip ? w - 1 - x : x) + dx - pad;
            if (sx < 0 || sx >= w) {
                for (int64_t ch = 0; ch < c; ch++) o[x * c + ch] = zero[ch];
            } else {
                for (int64_t ch = 0; ch < c; ch++)
                    o[x * c + ch] = ((float)row[sx * c + ch] / 255.0f - a->mean[ch]) / a->std[ch];
            }
        }
    }
}

