/* mem.h - big blocks on huge pages, faulted in off the hot thread.
 *
 * The capture thread's hot tables (the flow table's slots and records, the record queue) are
 * touched at random or in a ring; on 4 KiB pages each first touch is a page fault and most
 * touches a TLB miss, both costly under virtualisation (a page fault took 10-15 us on the
 * development VM). Blocks of at least TW_BIG_ALIGN bytes are therefore mapped on a huge page
 * boundary with transparent huge pages asked for (the kernel may refuse: only speed is lost),
 * and a prefaulter faults a block in on a short-lived thread of its own.
 */
#ifndef TUNNELWATCH_MEM_H
#define TUNNELWATCH_MEM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#define TW_BIG_ALIGN ((size_t)2 << 20)

/* A zero-filled block of n bytes: mapped on a huge page boundary from TW_BIG_ALIGN bytes on,
 * from the heap below. NULL when out of memory. Freed with tw_big_free(p, n). */
void *tw_big_alloc(size_t n);
void tw_big_free(void *p, size_t n);
/* Bytes a tw_big_alloc(n) block takes: whole huge pages, or n from the heap. */
size_t tw_big_footprint(size_t n);

/* Faults the pages of p[0 .. n) in now, without writing a byte (MADV_POPULATE_WRITE, so it
 * races with nothing); a kernel before 5.14 refuses and the faults stay where they were. */
void tw_populate(void *p, size_t n);

/* A thread that faults one block in at a time (tw_populate); one per owner. */
struct tw_prefaulter {
    pthread_t th;
    bool on;
};

/* Faults in the tw_big_alloc(n) block p on pf's thread, after pf's previous block; a block
 * below TW_BIG_ALIGN, or no thread, leaves the faults where they were. */
void tw_prefault_start(struct tw_prefaulter *pf, void *p, size_t n);
/* Waits for pf's thread, if any. */
void tw_prefault_join(struct tw_prefaulter *pf);

/* Grows the heap by n bytes now and has a prefaulter thread fault them in (on huge pages
 * where the kernel gives them), and keeps the heap from giving freed memory at its top back
 * while under 1.5 n: the capture thread's small allocations (incidents, summary rows,
 * reassembly buffers, nDPI's flow state) then land on pages already there instead of faulting
 * each new one in. Call once, on the capture thread, before capture; glibc only (elsewhere it
 * does nothing). */
void tw_heap_reserve(size_t n);

#endif
