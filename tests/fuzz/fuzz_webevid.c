/* fuzz_webevid.c - libFuzzer target for tunnelwatch-web's evidence checks (src/web/webcore.c):
 * web_pcap_whole over hostile bytes (a pcap from Redis or from evidence.dir) and
 * web_evidence_id_ok over a hostile request path. The whole prefix is 0 or a header plus whole
 * records inside the input, and walking that prefix again gives the same length; an accepted
 * id holds only [0-9a-f-]. */
#include <stdint.h>
#include <stdlib.h>

#include "webcore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t whole = web_pcap_whole(data, size);
    if (whole != 0 && (whole < 24 || whole > size || web_pcap_whole(data, whole) != whole))
        abort();
    if (web_evidence_id_ok((const char *)data, size)) {
        if (size == 0 || size > WEB_EVID_MAX || data[0] == '-')
            abort();
        for (size_t i = 0; i < size; i++)
            if (!((data[i] >= '0' && data[i] <= '9') || (data[i] >= 'a' && data[i] <= 'f') ||
                  data[i] == '-'))
                abort();
    }
    return 0;
}
