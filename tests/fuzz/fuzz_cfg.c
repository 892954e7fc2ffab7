/* fuzz_cfg.c - config text -> temp file -> cfg_load, cfg_validate, cfg_print: never a crash,
 * a leak or a hang, whatever the text. Inputs with @include are skipped: libconfig would
 * open whatever path they name (/dev/stdin blocks), which says nothing about our code. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tunnelwatch/cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/* libconfig 1.5 leaks scanner buffers (strings) when a syntax error follows a string token (the
 * two-byte file `""` is enough); that is the library's bug, fixed upstream, not ours. */
const char *__lsan_default_suppressions(void)
{
    return "leak:strbuf_append\nleak:libconfig_yylex\n";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (memmem(data, size, "@include", 8))
        return 0;
    char path[] = "/tmp/tw_fuzz_cfg_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        unlink(path);
        return 0;
    }
    close(fd);
    struct tw_cfg *cfg = malloc(sizeof(*cfg));
    FILE *sink = fopen("/dev/null", "w");
    if (cfg && sink) {
        cfg_defaults(cfg);
        if (cfg_load(cfg, path, sink) >= 0) {
            /* a BPF filter naming a host would make pcap resolve it: not our code */
            if (!cfg->capture.bpf)
                (void)cfg_validate(cfg, sink);
            cfg_print(cfg, sink);
        }
        cfg_free(cfg);
    }
    if (sink)
        fclose(sink);
    free(cfg);
    unlink(path);
    return 0;
}
