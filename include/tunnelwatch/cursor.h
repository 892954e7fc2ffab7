/* cursor.h - bounds-checked reader over untrusted bytes.
 *
 * A read past `end` latches err and returns 0; later reads do nothing, so callers check
 * err once per group of reads (Knot DNS's wire_ctx, shrunk). Lengths are compared with
 * what is left, never p + n with end, because p + n can overflow.
 */
#ifndef TW_CURSOR_H
#define TW_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tunnelwatch/tw.h"

struct cur {
    const uint8_t *p, *end;
    int err;
};

static inline struct cur cur_init(const uint8_t *b, size_t n)
{
    struct cur c = {b, b + n, TW_OK};
    return c;
}

static inline size_t cur_left(const struct cur *c)
{
    return (size_t)(c->end - c->p);
}

static inline bool cur_need(struct cur *c, size_t n)
{
    if (c->err == TW_OK && n <= cur_left(c))
        return true;
    if (c->err == TW_OK)
        c->err = TW_ETRUNC;
    c->p = c->end;
    return false;
}

static inline uint8_t cur_u8(struct cur *c)
{
    return cur_need(c, 1) ? *c->p++ : 0;
}

static inline uint16_t cur_u16be(struct cur *c)
{
    if (!cur_need(c, 2))
        return 0;
    uint16_t v = (uint16_t)((unsigned)c->p[0] << 8 | c->p[1]);
    c->p += 2;
    return v;
}

static inline uint32_t cur_u24be(struct cur *c)
{
    if (!cur_need(c, 3))
        return 0;
    uint32_t v = (uint32_t)c->p[0] << 16 | (uint32_t)c->p[1] << 8 | c->p[2];
    c->p += 3;
    return v;
}

static inline uint32_t cur_u32be(struct cur *c)
{
    if (!cur_need(c, 4))
        return 0;
    uint32_t v =
        (uint32_t)c->p[0] << 24 | (uint32_t)c->p[1] << 16 | (uint32_t)c->p[2] << 8 | c->p[3];
    c->p += 4;
    return v;
}

/* Returns a pointer to the next n bytes and moves past them, or NULL (err latched). */
static inline const uint8_t *cur_bytes(struct cur *c, size_t n)
{
    if (!cur_need(c, n))
        return NULL;
    const uint8_t *b = c->p;
    c->p += n;
    return b;
}

static inline void cur_skip(struct cur *c, size_t n)
{
    (void)cur_bytes(c, n);
}

/* Child cursor over the next n bytes; c moves past them. On a short parent both latch
 * TW_ETRUNC, so a false inner length can never reach past its parent. */
static inline struct cur cur_sub(struct cur *c, size_t n)
{
    const uint8_t *b = cur_bytes(c, n);
    struct cur s = {b, b ? b + n : NULL, c->err};
    if (!b)
        s.p = s.end = c->end;
    return s;
}

#endif /* TW_CURSOR_H */
