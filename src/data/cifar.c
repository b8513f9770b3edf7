/* CIFAR-10 / CIFAR-100 binary version (Krizhevsky 2009, "binary version" on the CIFAR page).
 * A record is <label byte> (CIFAR-10) or <coarse byte><fine byte> (CIFAR-100), then 3072
 * bytes: the red, green and blue 32x32 planes, row-major. We store HWC. The training set
 * is data_batch_1..5.bin concatenated in order (as torchvision does), so "first n_i in file
 * order" selects the same images as the published code. */
#include "data/data_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#define CIFAR_SIDE 32
#define CIFAR_PIXELS (CIFAR_SIDE * CIFAR_SIDE)

static const char *const cifar10_names[10] = {"airplane", "automobile", "bird", "cat", "deer",
                                              "dog", "frog", "horse", "ship", "truck"};

/* fine_label_names.txt of the CIFAR-100 binary archive, index = fine label. */
static const char *const cifar100_names[100] = {
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
};

/* root itself, or root/<sub> if that is where the files are. Returns an lt_malloc'ed path. */
static char *cifar_dir(const char *root, const char *probe, const char *sub) {
    char *p = lt_data_path_join(root, probe);
    if (!p) return NULL;
    int here = lt_data_file_size(p) >= 0;
    lt_free(p);
    if (here) return lt_strdup(root);
    return lt_data_path_join(root, sub);
}

lt_status lt_dataset_read_cifar(lt_dataset *ds, const char *root, int32_t n_classes, int train) {
    memset(ds, 0, sizeof *ds);
    if (n_classes != 10 && n_classes != 100)
        return lt_error(LT_ERR_ARG, "cifar: class count must be 10 or 100, got %d", n_classes);
    int c100 = n_classes == 100;
    const char *names10[6] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                              "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};
    const char *files[5];
    int n_files;
    if (c100) {
        files[0] = train ? "train.bin" : "test.bin";
        n_files = 1;
    } else if (train) {
        for (int k = 0; k < 5; k++) files[k] = names10[k];
        n_files = 5;
    } else {
        files[0] = names10[5];
        n_files = 1;
    }
    char *dir = cifar_dir(root, files[0], c100 ? "cifar-100-binary" : "cifar-10-batches-bin");
    if (!dir) return lt_error(LT_ERR_NOMEM, "cifar: out of memory");
    const int64_t head = c100 ? 2 : 1, rec = head + 3 * CIFAR_PIXELS;

    /* Sizes first: every file must hold whole records; then one allocation. */
    char *paths[5] = {0};
    int64_t sizes[5], n = 0;
    lt_status st = LT_OK;
    for (int k = 0; k < n_files && st == LT_OK; k++) {
        paths[k] = lt_data_path_join(dir, files[k]);
        if (!paths[k]) {
            st = lt_error(LT_ERR_NOMEM, "cifar: out of memory");
            break;
        }
        sizes[k] = lt_data_file_size(paths[k]);
        if (sizes[k] < 0)
            st = lt_error(LT_ERR_IO, "%s: cannot open: %s", paths[k], strerror(errno));
        else if (sizes[k] == 0 || sizes[k] % rec != 0)
            st = lt_error(LT_ERR_FORMAT,
                          "%s: truncated: %lld bytes is not a whole number of %lld-byte records "
                          "(the last record starts at byte offset %lld)", paths[k], (long long)sizes[k],
                          (long long)rec, (long long)(sizes[k] / rec * rec));
        else
            n += sizes[k] / rec;
    }
    if (st == LT_OK) st = lt_data_alloc_images(ds, n, CIFAR_SIDE, CIFAR_SIDE, 3);
    uint8_t *chunk = NULL;
    const int64_t chunk_recs = 1000;
    if (st == LT_OK && !(chunk = lt_malloc((size_t)(chunk_recs * rec))))
        st = lt_error(LT_ERR_NOMEM, "cifar: out of memory");
    int64_t i = 0;
    for (int k = 0; k < n_files && st == LT_OK; k++) {
        FILE *f = fopen(paths[k], "rb");
        if (!f) {
            st = lt_error(LT_ERR_IO, "%s: cannot open: %s", paths[k], strerror(errno));
            break;
        }
        int64_t recs = sizes[k] / rec;
        for (int64_t r0 = 0; r0 < recs && st == LT_OK; r0 += chunk_recs) {
            int64_t m = recs - r0 < chunk_recs ? recs - r0 : chunk_recs;
            st = lt_data_read_exact(f, paths[k], r0 * rec, chunk, m * rec);
            for (int64_t r = 0; r < m && st == LT_OK; r++, i++) {
                const uint8_t *src = chunk + r * rec;
                int label = src[head - 1];   /* CIFAR-100: the fine label is the 2nd byte */
                if (label >= n_classes) {
                    st = lt_error(LT_ERR_FORMAT, "%s: label %d at byte offset %lld is not below the class count %d",
                                  paths[k], label, (long long)((r0 + r) * rec + head - 1), n_classes);
                    break;
                }
                ds->labels[i] = label;
                uint8_t *dst = ds->images + i * 3 * CIFAR_PIXELS;
                const uint8_t *pl = src + head;
                for (int p = 0; p < CIFAR_PIXELS; p++) {   /* CHW -> HWC */
                    dst[3 * p + 0] = pl[p];
                    dst[3 * p + 1] = pl[CIFAR_PIXELS + p];
                    dst[3 * p + 2] = pl[2 * CIFAR_PIXELS + p];
                }
            }
        }
        fclose(f);
    }
    lt_free(chunk);
    for (int k = 0; k < n_files; k++) lt_free(paths[k]);
    lt_free(dir);
    if (st == LT_OK) st = lt_data_set_class_names(ds, n_classes, c100 ? cifar100_names : cifar10_names);
    if (st != LT_OK) lt_dataset_free(ds);
    return st;
}
