/* mem.c - big blocks on huge pages, faulted in off the hot thread (see mem.h). */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "tunnelwatch/mem.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

size_t tw_big_footprint(size_t n)
{
    return n < TW_BIG_ALIGN ? n : (n + TW_BIG_ALIGN - 1) & ~(TW_BIG_ALIGN - 1);
}

void *tw_big_alloc(size_t n)
{
    if (n < TW_BIG_ALIGN)
        return calloc(1, n);
    /* map one huge page more and trim, so the block starts on a huge page boundary */
    size_t len = tw_big_footprint(n);
    uint8_t *p =
        mmap(NULL, len + TW_BIG_ALIGN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    size_t head = (TW_BIG_ALIGN - ((uintptr_t)p & (TW_BIG_ALIGN - 1))) & (TW_BIG_ALIGN - 1);
    if (head)
        munmap(p, head);
    munmap(p + head + len, TW_BIG_ALIGN - head);
    (void)madvise(p + head, len, MADV_HUGEPAGE);
    return p + head;
}

void tw_big_free(void *p, size_t n)
{
    if (!p)
        return;
    if (n < TW_BIG_ALIGN)
        free(p);
    else
        munmap(p, tw_big_footprint(n));
}

void tw_populate(void *p, size_t n)
{
    (void)madvise(p, n, MADV_POPULATE_WRITE);
}

struct prefault_arg {
    void *p;
    size_t n;
};

static void *prefault_main(void *arg)
{
    struct prefault_arg a = *(struct prefault_arg *)arg;
    free(arg);
    tw_populate(a.p, a.n);
    return NULL;
}

void tw_prefault_join(struct tw_prefaulter *pf)
{
    if (pf->on)
        pthread_join(pf->th, NULL);
    pf->on = false;
}

void tw_prefault_start(struct tw_prefaulter *pf, void *p, size_t n)
{
    tw_prefault_join(pf);
    struct prefault_arg *a = n >= TW_BIG_ALIGN ? malloc(sizeof(*a)) : NULL;
    if (!a)
        return;
    a->p = p;
    a->n = tw_big_footprint(n);
    if (pthread_create(&pf->th, NULL, prefault_main, a) == 0)
        pf->on = true;
    else
        free(a);
}
