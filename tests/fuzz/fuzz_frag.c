/* fuzz_frag.c - libFuzzer target for the reassembler: the input is a list of records
 * len(16, BE) | time step(8) | raw IP packet; each packet goes through dec_packet(DLT_RAW),
 * fragments into a small frag table (tight caps, so eviction and limits get hit), and
 * every completed datagram through dec_transport(). All state lives for one input only. */
#include <stddef.h>
#include <stdint.h>

#include "tunnelwatch/decode.h"
#include "tunnelwatch/frag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct frag *f = frag_new(4, 16384, 30);
    if (!f)
        return 0;
    struct tw_time now = {1000, 0};
    volatile uint8_t sink = 0;
    for (int n = 0; size >= 3 && n < 256; n++) {
        size_t len = (size_t)data[0] << 8 | data[1];
        now.sec += data[2];
        data += 3, size -= 3;
        if (len > size)
            len = size;
        struct dec_pkt p;
        if (dec_packet(TW_DLT_RAW, data, (uint32_t)len, &p) == DEC_FRAG) {
            const uint8_t *d;
            uint32_t dl;
            if (frag_add(f, &p, now, &d, &dl) == 1) {
                for (uint32_t i = 0; i < dl; i++)
                    sink ^= d[i];
                (void)dec_transport(p.proto, d, dl, dl, &p);
            }
        }
        data += len, size -= len;
    }
    (void)frag_expire(f, now);
    frag_free(f);
    (void)sink;
    return 0;
}
