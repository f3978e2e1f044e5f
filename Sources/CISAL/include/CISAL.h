#ifndef CISAL_H
#define CISAL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Run-time loader for Intel ISA-L (libisal.so.2): CRC-32, raw deflate and inflate.
 * The build never depends on ISA-L being installed: when the headers are missing at build time or
 * the library is missing at run time, cisal_available() returns 0 and callers use zlib instead.
 */

/* 1 when ISA-L was found and every needed symbol resolved. Thread-safe, loads once. */
int cisal_available(void);

/* CRC-32 (gzip polynomial, reflected), same result as zlib's crc32(). Requires cisal_available(). */
uint32_t cisal_crc32(uint32_t crc, const uint8_t *buf, uint64_t len);

/* A level-1 raw-deflate compressor (no wrapper). One per worker. NULL when unavailable. */
typedef struct cisal_deflater cisal_deflater;
cisal_deflater *cisal_deflater_new(void);
void cisal_deflater_free(cisal_deflater *d);
/*
 * Compresses `in` (< 4 GiB) as an independent piece of a deflate stream: when `last` is 0 the output
 * ends with a sync flush (byte aligned, no final block); when `last` is 1 it ends with the final block.
 * Returns the number of bytes written to `out`, -1 when `out` is too small, -2 on another error.
 */
int64_t cisal_deflate_piece(cisal_deflater *d, const uint8_t *in, uint32_t in_len, uint8_t *out,
                            uint32_t out_cap, int last);

/* A raw-deflate decompressor. NULL when unavailable. */
typedef struct cisal_inflater cisal_inflater;
cisal_inflater *cisal_inflater_new(void);
void cisal_inflater_free(cisal_inflater *i);
void cisal_inflater_reset(cisal_inflater *i);
/*
 * Inflates from `in` into `out`. Sets *consumed and *produced. *finished = 1 once the final block has
 * ended. The decoder reads ahead: whole bytes it took past the end of the deflate data are given back,
 * by excluding them from *consumed when they came from this call's input, else by copying them to
 * `held` (8 bytes of room; *held_count of them, in stream order).
 * Returns 0 on success, a negative value on corrupt data.
 */
int cisal_inflate(cisal_inflater *i, const uint8_t *in, uint32_t in_len, uint8_t *out, uint32_t out_len,
                  uint32_t *consumed, uint32_t *produced, int *finished, uint8_t *held, uint32_t *held_count);

#endif
