#pragma once

/* Record layout shared with agent/capture (Go reads it with binary.Read-like
 * decoding; keep the field order, sizes and explicit padding in sync). */

#define PODWIRE_DIR_EGRESS 0
#define PODWIRE_DIR_INGRESS 1

/* Payload chunk sizes: a record carries one chunk of one packet. The ring
 * buffer needs a constant reservation size, so a chunk is reserved in the
 * smallest power-of-two class from 128 bytes to PODWIRE_CLASS_XL that holds
 * it (at most twice its size). */
#define PODWIRE_CLASS_XL 16384
/* At most this many XL chunks per packet: 256 KiB (loopback and BIG TCP
 * make GSO/GRO packets larger than 64 KiB). */
#define PODWIRE_MAX_CHUNKS 16

struct podwire_pkt {
	__u64 ts_ns;     /* bpf_ktime_get_ns() */
	__u64 cookie;    /* socket cookie */
	__u64 cgroup_id; /* cgroup v2 id of the socket */
	__u8 saddr[16];  /* IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u16 sport;     /* host byte order */
	__u16 dport;
	__u32 seq;       /* TCP sequence number of the chunk's first byte */
	__u32 len;       /* payload bytes in this record */
	__u32 total;     /* payload bytes of the whole packet */
	__u32 offset;    /* offset of this chunk in the packet payload */
	__u8 dir;        /* PODWIRE_DIR_* */
	__u8 family;     /* 4 or 6 */
	__u8 tcp_flags;
	__u8 l4proto;    /* 6 TCP, 17 UDP */
};

/* Counter slots (per-CPU array of __u64). */
enum podwire_counter {
	PODWIRE_C_PACKETS = 0,     /* TCP packets and captured UDP datagrams seen */
	PODWIRE_C_BYTES,           /* payload bytes seen */
	PODWIRE_C_SKIPPED_PORT,    /* packets on a skipped port (agent API, configured) */
	PODWIRE_C_NOT_TCP,         /* packets that are not TCP or UDP over IPv4/IPv6 */
	PODWIRE_C_PURE_ACK,        /* packets without payload or SYN/FIN/RST, not sent up */
	PODWIRE_C_RB_FULL,         /* records lost: ring buffer full */
	PODWIRE_C_RB_FULL_BYTES,   /* payload bytes lost: ring buffer full */
	PODWIRE_C_TRUNCATED,       /* packets larger than the copy limit */
	PODWIRE_C_TRUNCATED_BYTES, /* payload bytes past the copy limit */
	PODWIRE_C_LOAD_ERR,        /* bpf_skb_load_bytes failures */
	PODWIRE_C_RECORDS,         /* records written */
	PODWIRE_C_LOCAL_DUP,       /* ingress packets already captured at a local sender's egress */
	PODWIRE_C_UDP_OTHER,       /* UDP datagrams on ports not captured */
	PODWIRE_C_MAX,
};

struct podwire_counter_set {
	__u64 c[PODWIRE_C_MAX];
};

/* A packet's addresses as sent, for telling that a local socket's egress
 * already captured it. */
struct podwire_flow {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u32 pad;
};
