//go:build ignore

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "capture.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17

/* Events go to user space; the agent sets max_entries before loading. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} podwire_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct podwire_counter_set);
} podwire_counters SEC(".maps");

/* Ports whose traffic is never captured (the agent's own API, configured):
 * a bitmap of 65536 bits, one array lookup a port. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} podwire_skip_ports SEC(".maps");

/* UDP ports whose datagrams are captured (DNS: 53 by default), same
 * bitmap layout. UDP carries much besides the protocols Podwire reads. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} podwire_udp_ports SEC(".maps");

/* Flows whose packets a local socket in scope sent (seen at egress). When
 * both ends are in scope, the receiver's ingress copy of a packet is the
 * same bytes again and is not sent up. LRU: a forgotten flow only costs a
 * duplicate that user space drops. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct podwire_flow);
	__type(value, __u8);
} podwire_local_flows SEC(".maps");

/* Copy at most this many XL chunks of a packet (set by the agent). */
volatile const __u32 podwire_max_chunks = PODWIRE_MAX_CHUNKS;

/* User space is woken once this much data waits (it also polls every few
 * milliseconds): one wakeup per record would cost a syscall per packet. */
volatile const __u32 podwire_wakeup_bytes = 1 << 20;

/* wakeup_flags wakes the reader only for the record (of size bytes) that
 * takes the unread data across podwire_wakeup_bytes: once it is awake and
 * behind, a wakeup per record would cost every packet an irq_work. A missed
 * wakeup costs at most the reader's poll interval. */
static __always_inline __u64 wakeup_flags(__u64 size)
{
	__u64 avail = bpf_ringbuf_query(&podwire_events, BPF_RB_AVAIL_DATA);
	if (avail >= podwire_wakeup_bytes && avail < podwire_wakeup_bytes + size + 8)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

static __always_inline struct podwire_counter_set *counters(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&podwire_counters, &zero);
}

static __always_inline void count(struct podwire_counter_set *c, __u32 slot, __u64 n)
{
	if (c && slot < PODWIRE_C_MAX)
		c->c[slot] += n;
}

static __always_inline int port_in(void *bitmap, __u16 port)
{
	__u32 word = port >> 6;
	__u64 *bits = bpf_map_lookup_elem(bitmap, &word);
	return bits && (*bits & (1ULL << (port & 63)));
}

static __always_inline int skipped_port(__u16 port)
{
	return port_in(&podwire_skip_ports, port);
}

struct tuple {
	struct podwire_pkt h;
	__u32 payload_off;
};

#define EMIT_CLASS(SIZE)                                                                   \
	static __noinline int emit_##SIZE(struct __sk_buff *skb, struct podwire_pkt *h,         \
					  __u32 off, __u32 n, struct podwire_counter_set *c)       \
	{                                                                                  \
		struct rec_##SIZE {                                                        \
			struct podwire_pkt h;                                              \
			__u8 data[SIZE];                                                   \
		} *r;                                                                      \
		__u64 len = n;                                                             \
		/* keep clang from dropping the checks the verifier needs */               \
		asm volatile("" : "+r"(len));                                              \
		if (len > SIZE)                                                            \
			return -1;                                                         \
		if (len == 0)                                                              \
			return -1;                                                         \
		r = bpf_ringbuf_reserve(&podwire_events, sizeof(*r), 0);                    \
		if (!r) {                                                                  \
			count(c, PODWIRE_C_RB_FULL, 1);                                       \
			count(c, PODWIRE_C_RB_FULL_BYTES, n);                                 \
			return -2;                                                         \
		}                                                                          \
		__builtin_memcpy(&r->h, h, sizeof(*h));                                    \
		if (bpf_skb_load_bytes(skb, off, r->data, len) < 0) {                      \
			count(c, PODWIRE_C_LOAD_ERR, 1);                                      \
			bpf_ringbuf_discard(r, 0);                                         \
			return -1;                                                         \
		}                                                                          \
		r->h.len = len;                                                            \
		bpf_ringbuf_submit(r, wakeup_flags(sizeof(*r)));                           \
		count(c, PODWIRE_C_RECORDS, 1);                                               \
		return 0;                                                                  \
	}

EMIT_CLASS(128)
EMIT_CLASS(256)
EMIT_CLASS(512)
EMIT_CLASS(1024)
EMIT_CLASS(2048)
EMIT_CLASS(4096)
EMIT_CLASS(8192)
EMIT_CLASS(16384)

static __noinline int emit_header_only(struct podwire_pkt *h, struct podwire_counter_set *c)
{
	struct podwire_pkt *r = bpf_ringbuf_reserve(&podwire_events, sizeof(*r), 0);
	if (!r) {
		count(c, PODWIRE_C_RB_FULL, 1);
		return -1;
	}
	__builtin_memcpy(r, h, sizeof(*h));
	r->len = 0;
	bpf_ringbuf_submit(r, wakeup_flags(sizeof(*r)));
	count(c, PODWIRE_C_RECORDS, 1);
	return 0;
}

static __always_inline int parse(struct __sk_buff *skb, struct tuple *t)
{
	__u32 l4 = 0;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
			return -1;
		if ((ip.protocol != IPPROTO_TCP_ && ip.protocol != IPPROTO_UDP_) ||
		    (ip.frag_off & bpf_htons(0x1fff)))
			return -1;
		t->h.l4proto = ip.protocol;
		t->h.family = 4;
		__builtin_memcpy(t->h.saddr, &ip.saddr, 4);
		__builtin_memcpy(t->h.daddr, &ip.daddr, 4);
		l4 = ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) < 0)
			return -1;
		__u8 nh = ip6.nexthdr;
		l4 = sizeof(ip6);
		/* Extension headers: hop-by-hop (BIG TCP's jumbo option among
		 * them), routing, destination options, fragment. */
		for (int i = 0; i < 4 && nh != IPPROTO_TCP_ && nh != IPPROTO_UDP_; i++) {
			__u8 ext[2];
			if (bpf_skb_load_bytes(skb, l4, ext, sizeof(ext)) < 0)
				return -1;
			if (nh == 0 || nh == 43 || nh == 60)
				l4 += (ext[1] + 1) * 8;
			else if (nh == 44)
				l4 += 8;
			else
				return -1;
			nh = ext[0];
		}
		if (nh != IPPROTO_TCP_ && nh != IPPROTO_UDP_)
			return -1;
		t->h.l4proto = nh;
		t->h.family = 6;
		__builtin_memcpy(t->h.saddr, &ip6.saddr, 16);
		__builtin_memcpy(t->h.daddr, &ip6.daddr, 16);
	} else {
		return -1;
	}

	if (t->h.l4proto == IPPROTO_UDP_) {
		struct udphdr udp;
		if (bpf_skb_load_bytes(skb, l4, &udp, sizeof(udp)) < 0)
			return -1;
		t->h.sport = bpf_ntohs(udp.source);
		t->h.dport = bpf_ntohs(udp.dest);
		t->payload_off = l4 + sizeof(udp);
		return 0;
	}

	struct tcphdr tcp;
	if (bpf_skb_load_bytes(skb, l4, &tcp, sizeof(tcp)) < 0)
		return -1;
	t->h.sport = bpf_ntohs(tcp.source);
	t->h.dport = bpf_ntohs(tcp.dest);
	t->h.seq = bpf_ntohl(tcp.seq);
	t->h.tcp_flags = ((__u8 *)&tcp)[13];
	t->payload_off = l4 + tcp.doff * 4;
	return 0;
}

static __always_inline void capture(struct __sk_buff *skb, __u8 dir)
{
	struct podwire_counter_set *c = counters();
	struct tuple t = {};

	if (parse(skb, &t) < 0) {
		count(c, PODWIRE_C_NOT_TCP, 1);
		return;
	}
	if (skipped_port(t.h.sport) || skipped_port(t.h.dport)) {
		count(c, PODWIRE_C_SKIPPED_PORT, 1);
		return;
	}
	if (t.h.l4proto == IPPROTO_UDP_ &&
	    !port_in(&podwire_udp_ports, t.h.sport) && !port_in(&podwire_udp_ports, t.h.dport)) {
		count(c, PODWIRE_C_UDP_OTHER, 1);
		return;
	}

	__u32 total = 0;
	if (skb->len > t.payload_off)
		total = skb->len - t.payload_off;

	count(c, PODWIRE_C_PACKETS, 1);
	count(c, PODWIRE_C_BYTES, total);

	/* SYN, FIN, RST matter to reassembly even without payload. */
	if (total == 0 && !(t.h.tcp_flags & 0x07)) {
		count(c, PODWIRE_C_PURE_ACK, 1);
		return;
	}

	struct podwire_flow flow = {};
	__builtin_memcpy(flow.saddr, t.h.saddr, 16);
	__builtin_memcpy(flow.daddr, t.h.daddr, 16);
	flow.sport = t.h.sport;
	flow.dport = t.h.dport;
	if (dir == PODWIRE_DIR_EGRESS) {
		if (t.h.l4proto == IPPROTO_TCP_ && (t.h.tcp_flags & 0x05)) {
			/* FIN or RST: the flow ends, and a later connection on the
			 * same addresses may come from a socket out of scope. The
			 * receiver's copy of this last packet goes up too; user
			 * space trims the repeat. */
			bpf_map_delete_elem(&podwire_local_flows, &flow);
		} else if (!bpf_map_lookup_elem(&podwire_local_flows, &flow)) {
			__u8 one = 1;
			bpf_map_update_elem(&podwire_local_flows, &flow, &one, BPF_ANY);
		}
	} else if (bpf_map_lookup_elem(&podwire_local_flows, &flow)) {
		count(c, PODWIRE_C_LOCAL_DUP, 1);
		return;
	}

	t.h.ts_ns = bpf_ktime_get_ns();
	t.h.cookie = bpf_get_socket_cookie(skb);
	t.h.cgroup_id = bpf_skb_cgroup_id(skb);
	t.h.dir = dir;
	t.h.total = total;

	if (total == 0) {
		emit_header_only(&t.h, c);
		return;
	}

	__u32 seq0 = t.h.seq;
	for (__u32 i = 0; i < PODWIRE_MAX_CHUNKS; i++) {
		if (i >= podwire_max_chunks)
			break;
		__u32 off = i * PODWIRE_CLASS_XL;
		if (off >= total)
			return;
		__u32 n = total - off;
		if (n > PODWIRE_CLASS_XL)
			n = PODWIRE_CLASS_XL;
		t.h.offset = off;
		t.h.seq = seq0 + off;
		int err;
		__u32 o = t.payload_off + off;
		if (n <= 128)
			err = emit_128(skb, &t.h, o, n, c);
		else if (n <= 256)
			err = emit_256(skb, &t.h, o, n, c);
		else if (n <= 512)
			err = emit_512(skb, &t.h, o, n, c);
		else if (n <= 1024)
			err = emit_1024(skb, &t.h, o, n, c);
		else if (n <= 2048)
			err = emit_2048(skb, &t.h, o, n, c);
		else if (n <= 4096)
			err = emit_4096(skb, &t.h, o, n, c);
		else if (n <= 8192)
			err = emit_8192(skb, &t.h, o, n, c);
		else
			err = emit_16384(skb, &t.h, o, n, c);
		if (err < 0) {
			/* The rest of the packet is lost with this chunk: count it. */
			if (err == -2 && off + n < total)
				count(c, PODWIRE_C_RB_FULL_BYTES, total - off - n);
			return;
		}
	}
	__u32 copied = podwire_max_chunks * PODWIRE_CLASS_XL;
	if (total > copied) {
		count(c, PODWIRE_C_TRUNCATED, 1);
		count(c, PODWIRE_C_TRUNCATED_BYTES, total - copied);
	}
}

SEC("cgroup_skb/ingress")
int podwire_ingress(struct __sk_buff *skb)
{
	capture(skb, PODWIRE_DIR_INGRESS);
	return 1;
}

SEC("cgroup_skb/egress")
int podwire_egress(struct __sk_buff *skb)
{
	capture(skb, PODWIRE_DIR_EGRESS);
	return 1;
}
