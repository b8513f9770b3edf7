# Shared by the shell tests (tests/cli.sh, tests/golden.sh): a tiny Fashion-MNIST-shaped
# IDX dataset, deterministic, written with awk so no test needs Python.

# idx FILE N KIND(images|labels) SEED: N images of 28 x 28 (or their labels), class i % 10;
# class c has a bright 7 x 7 block at a class-dependent place plus deterministic noise.
idx() {
    awk -v n="$2" -v kind="$3" -v seed="$4" 'BEGIN {
        if (kind == "images") printf "%c%c%c%c", 0, 0, 8, 3; else printf "%c%c%c%c", 0, 0, 8, 1
        printf "%c%c%c%c", 0, 0, int(n / 256), n % 256
        if (kind == "images") printf "%c%c%c%c%c%c%c%c", 0, 0, 0, 28, 0, 0, 0, 28
        x = seed
        for (i = 0; i < n; i++) {
            c = i % 10
            if (kind == "labels") { printf "%c", c; continue }
            r0 = 2 + 7 * int(c / 3); c0 = 2 + 7 * (c % 3)
            for (p = 0; p < 784; p++) {
                x = (x * 1103515245 + 12345) % 2147483648
                v = int(x / 65536) % 64
                r = int(p / 28); q = p % 28
                if (r >= r0 && r < r0 + 7 && q >= c0 && q < c0 + 7) v += 150
                printf "%c", v
            }
        }
    }' > "$1"
}

# tiny_fmnist DIR: 30 training and 6 test images per class (train labels gzipped, as the
# .gz form is read first and both must work)
tiny_fmnist() {
    mkdir -p "$1"
    idx "$1/train-images-idx3-ubyte" 300 images 1
    idx "$1/train-labels-idx1-ubyte" 300 labels 1
    idx "$1/t10k-images-idx3-ubyte" 60 images 2
    idx "$1/t10k-labels-idx1-ubyte" 60 labels 2
    gzip -kf "$1/train-labels-idx1-ubyte"
    rm "$1/train-labels-idx1-ubyte"
}

# tensor_digest FILE.safetensors: sha256 over the tensors (names sorted; name, dtype,
# shape and data bytes of each), ignoring __metadata__, which holds paths and versions.
tensor_digest() {
    local f=$1 hlen
    hlen=$(od -An -tu8 -N8 "$f" | tr -d ' ')
    head -c $((8 + hlen)) "$f" | tail -c "$hlen" |
        grep -o '"[^"]*":{"dtype":"[A-Z0-9]*","shape":\[[0-9,]*\],"data_offsets":\[[0-9]*,[0-9]*\]}' |
        sed 's/^"\([^"]*\)":{"dtype":"\([A-Z0-9]*\)","shape":\[\([0-9,]*\)\],"data_offsets":\[\([0-9]*\),\([0-9]*\)\]}$/\1 \2 \3 \4 \5/' |
        LC_ALL=C sort |
        while read -r name dtype shape a b; do
            printf '%s %s [%s]\n' "$name" "$dtype" "$shape"
            tail -c +$((9 + hlen + a)) "$f" | head -c $((b - a))
        done | sha256sum | cut -d' ' -f1
}
