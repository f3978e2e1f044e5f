#include "CISAL.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

#if __has_include(<isa-l.h>)
#include <isa-l.h>
#define CISAL_HAVE_HEADERS 1
#else
#define CISAL_HAVE_HEADERS 0
#endif

#if CISAL_HAVE_HEADERS

typedef void (*deflate_init_fn)(struct isal_zstream *);
typedef int (*deflate_fn)(struct isal_zstream *);
typedef void (*inflate_init_fn)(struct inflate_state *);
typedef int (*inflate_fn)(struct inflate_state *);
typedef uint32_t (*crc_fn)(uint32_t, const unsigned char *, uint64_t);

static struct {
    deflate_init_fn deflate_init;
    deflate_fn deflate;
    inflate_init_fn inflate_init;
    inflate_fn inflate;
    crc_fn crc;
    int ok;
} isal;

static pthread_once_t isal_once = PTHREAD_ONCE_INIT;

static void isal_load(void) {
    const char *disable = getenv("ASMTD_NO_ISAL");
    if (disable != NULL && disable[0] != '\0' && disable[0] != '0') return;
    void *h = dlopen("libisal.so.2", RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) h = dlopen("libisal.so", RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) return;
    isal.deflate_init = (deflate_init_fn)dlsym(h, "isal_deflate_init");
    isal.deflate = (deflate_fn)dlsym(h, "isal_deflate");
    isal.inflate_init = (inflate_init_fn)dlsym(h, "isal_inflate_init");
    isal.inflate = (inflate_fn)dlsym(h, "isal_inflate");
    isal.crc = (crc_fn)dlsym(h, "crc32_gzip_refl");
    isal.ok = isal.deflate_init && isal.deflate && isal.inflate_init && isal.inflate && isal.crc;
}

int cisal_available(void) {
    pthread_once(&isal_once, isal_load);
    return isal.ok;
}

uint32_t cisal_crc32(uint32_t crc, const uint8_t *buf, uint64_t len) {
    if (!cisal_available()) return 0;
    return isal.crc(crc, buf, len);
}

struct cisal_deflater {
    struct isal_zstream stream;
    uint8_t *level_buf;
};

cisal_deflater *cisal_deflater_new(void) {
    if (!cisal_available()) return NULL;
    cisal_deflater *d = calloc(1, sizeof(*d));
    if (d == NULL) return NULL;
    d->level_buf = malloc(ISAL_DEF_LVL1_DEFAULT);
    if (d->level_buf == NULL) {
        free(d);
        return NULL;
    }
    return d;
}

void cisal_deflater_free(cisal_deflater *d) {
    if (d == NULL) return;
    free(d->level_buf);
    free(d);
}

int64_t cisal_deflate_piece(cisal_deflater *d, const uint8_t *in, uint32_t in_len, uint8_t *out,
                            uint32_t out_cap, int last) {
    struct isal_zstream *s = &d->stream;
    isal.deflate_init(s);
    s->level = 1;
    s->level_buf = d->level_buf;
    s->level_buf_size = ISAL_DEF_LVL1_DEFAULT;
    s->gzip_flag = IGZIP_DEFLATE;
    s->flush = last ? NO_FLUSH : SYNC_FLUSH;
    s->end_of_stream = last ? 1 : 0;
    s->next_in = (uint8_t *)in;
    s->avail_in = in_len;
    s->next_out = out;
    s->avail_out = out_cap;
    int rc = isal.deflate(s);
    if (rc != COMP_OK) return -2;
    if (s->avail_in != 0 || s->avail_out == 0) return -1;
    if (last && s->internal_state.state != ZSTATE_END) return -1;
    return (int64_t)(out_cap - s->avail_out);
}

struct cisal_inflater {
    struct inflate_state state;
};

cisal_inflater *cisal_inflater_new(void) {
    if (!cisal_available()) return NULL;
    cisal_inflater *i = malloc(sizeof(*i));
    if (i == NULL) return NULL;
    cisal_inflater_reset(i);
    return i;
}

void cisal_inflater_free(cisal_inflater *i) { free(i); }

void cisal_inflater_reset(cisal_inflater *i) {
    isal.inflate_init(&i->state);
    i->state.crc_flag = ISAL_DEFLATE;
}

int cisal_inflate(cisal_inflater *i, const uint8_t *in, uint32_t in_len, uint8_t *out, uint32_t out_len,
                  uint32_t *consumed, uint32_t *produced, int *finished, uint8_t *held, uint32_t *held_count) {
    struct inflate_state *s = &i->state;
    *held_count = 0;
    s->next_in = (uint8_t *)in;
    s->avail_in = in_len;
    s->next_out = out;
    s->avail_out = out_len;
    int rc = isal.inflate(s);
    *finished = 0;
    if (rc < 0) {
        *consumed = in_len - s->avail_in;
        *produced = out_len - s->avail_out;
        return rc;
    }
    if (s->block_state == ISAL_BLOCK_FINISH) {
        /* Give back whole bytes the bit reader took past the end of the deflate data. They are the most
         * recently loaded bytes, above the padding bits of the last deflate byte. */
        uint32_t extra = (uint32_t)(s->read_in_length / 8);
        uint32_t used = in_len - s->avail_in;
        if (extra > 0 && extra <= used) {
            s->next_in -= extra;
            s->avail_in += extra;
        } else if (extra > 0) {
            uint64_t bits = s->read_in >> (s->read_in_length % 8);
            for (uint32_t k = 0; k < extra && k < 8; k++) held[k] = (uint8_t)(bits >> (8 * k));
            *held_count = extra < 8 ? extra : 8;
        }
        s->read_in_length = 0;
        s->read_in = 0;
        *finished = 1;
    }
    *consumed = in_len - s->avail_in;
    *produced = out_len - s->avail_out;
    return 0;
}

#else /* no ISA-L headers at build time */

int cisal_available(void) { return 0; }
uint32_t cisal_crc32(uint32_t crc, const uint8_t *buf, uint64_t len) {
    (void)buf;
    (void)len;
    return crc;
}
cisal_deflater *cisal_deflater_new(void) { return NULL; }
void cisal_deflater_free(cisal_deflater *d) { (void)d; }
int64_t cisal_deflate_piece(cisal_deflater *d, const uint8_t *in, uint32_t in_len, uint8_t *out,
                            uint32_t out_cap, int last) {
    (void)d, (void)in, (void)in_len, (void)out, (void)out_cap, (void)last;
    return -2;
}
cisal_inflater *cisal_inflater_new(void) { return NULL; }
void cisal_inflater_free(cisal_inflater *i) { (void)i; }
void cisal_inflater_reset(cisal_inflater *i) { (void)i; }
int cisal_inflate(cisal_inflater *i, const uint8_t *in, uint32_t in_len, uint8_t *out, uint32_t out_len,
                  uint32_t *consumed, uint32_t *produced, int *finished, uint8_t *held, uint32_t *held_count) {
    (void)i, (void)in, (void)in_len, (void)out, (void)out_len, (void)held;
    *held_count = 0;
    *consumed = 0;
    *produced = 0;
    *finished = 0;
    return -1;
}

#endif
