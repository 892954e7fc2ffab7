/* evidence.h - --write-evidence: the packets of flagged flows, as a pcap.
 *
 * In a replay the flagged flows' keys (5-tuple + VLAN) are remembered (at most
 * EVIDENCE_FLOWS_MAX, more are counted) and evidence_write() reads the inputs a second time,
 * writing every packet of those flows from their first packet on. Live, there is no second
 * pass: evidence_packet() writes each packet of a flagged flow from the flagging packet on.
 */
#ifndef TW_EVIDENCE_H
#define TW_EVIDENCE_H

#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdint.h>

#include "tunnelwatch/tw.h"

#define EVIDENCE_FLOWS_MAX 65536

struct evidence;

/* path: the pcap to write (borrowed). NULL when out of memory. */
struct evidence *evidence_new(const char *path);
void evidence_free(struct evidence *ev);
/* A live input of link type dlt starts: later flagged packets go straight to the file. */
void evidence_begin_live(struct evidence *ev, int dlt, FILE *log);
/* A flow (client side first) was flagged. */
void evidence_flag(struct evidence *ev, const struct tw_addr *cli, const struct tw_addr *srv,
                   uint16_t cport, uint16_t sport, uint8_t proto, uint16_t vlan);
/* A packet of a flagged flow, live. */
void evidence_packet(struct evidence *ev, const struct pcap_pkthdr *h, const uint8_t *data);
/* Closes the live file. */
void evidence_close(struct evidence *ev);
/* The replay's second pass over inputs (NULL-terminated): returns the number of packets
 * written (>= 0; a one-line report in err) or TW_EIO (reason in err). */
int evidence_write(struct evidence *ev, char *const *inputs, char *err, size_t errlen);

#endif /* TW_EVIDENCE_H */
