// Package capture loads the cgroup_skb programs, attaches them to a cgroup
// v2 subtree and turns ring buffer records into TCP segments.
package capture

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type podwire_pkt -type podwire_counter_set capture ../../bpf/capture.c -- -I../../bpf
