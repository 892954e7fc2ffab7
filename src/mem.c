/* mem.c - big blocks on huge pages, faulted in off the hot thread (see mem.h). */
#include <stdint.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdlib.h>
#include <sys/mman.h>

#include "tunnelwatch/mem.h"
#include "tunnelwatch/tw.h"

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
    if (tw_thread_start(&pf->th, "tw-prefault", prefault_main, a, false) == 0)
        pf->on = true;
    else
        free(a);
}

void tw_heap_reserve(size_t n)
{
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) /* ASan keeps a heap of its own */
    if (n < TW_BIG_ALIGN || n > ((size_t)16 << 20))
        return;
    /* freed memory at the heap's top is kept up to 1.5 n; a block of n comes from the heap
     * (not its own mapping) for this one call; after it, blocks from 4 MiB on get mappings of
     * their own. Setting these stops glibc's own adjustment, which would have left the
     * threshold at 128 KiB: the Redis publisher's output buffer (hiredis), a few hundred KiB
     * a batch, was then mapped and unmapped for every batch, and each unmapping flushes the
     * TLB of every CPU running a thread of the sensor, the capture thread's too (87 mmap and
     * munmap pairs a run on the 1 GB bench mix with SigmaHQ loaded; strace -f) */
    mallopt(M_TRIM_THRESHOLD, (int)(n + n / 2));
    mallopt(M_MMAP_THRESHOLD, (int)(n + 4096));
    uint8_t *p = malloc(n);
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    struct prefault_arg *arg = p ? malloc(sizeof(*arg)) : NULL;
    if (!arg) {
        free(p);
        return;
    }
    uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
    uintptr_t e = ((uintptr_t)p + n) & ~(uintptr_t)4095;
    free(p); /* into the heap's top chunk, which keeps its pages */
    arg->p = (void *)a;
    arg->n = e - a;
    (void)madvise(arg->p, arg->n, MADV_HUGEPAGE);
    pthread_t th;
    if (tw_thread_start(&th, NULL, prefault_main, arg, true) != 0)
        free(arg); /* the pages fault in as they are used, as without the reserve */
#else
    (void)n;
#endif
}
