package redis

import (
	"strings"

	"github.com/podwire/podwire/agent/dissect/sniff"
)

// Verdict is what Detect makes of a stream's first bytes.
type Verdict = sniff.Verdict

// Detect's answers.
const (
	No       = sniff.No
	Yes      = sniff.Yes
	NeedMore = sniff.NeedMore
)

// cmdInfo describes a known command.
type cmdInfo struct {
	name   string // upper case, the entry's Method
	key    int8   // index of the argument shown as Path (0: none)
	sub    bool   // two-word command: Path is the subcommand
	redact bool   // arguments are secrets
	subs   int8   // pub/sub: 1 subscribe, 2 unsubscribe
}

// maxName bounds the length of a command name.
const maxName = 32

var commands = map[string]*cmdInfo{}

func init() {
	add := func(list string, f func(*cmdInfo)) {
		for _, n := range strings.Fields(list) {
			c := &cmdInfo{name: n}
			f(c)
			commands[n] = c
		}
	}
	add(`GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX APPEND STRLEN INCR DECR
		INCRBY DECRBY INCRBYFLOAT GETRANGE SETRANGE SUBSTR LCS MGET MSET MSETNX DEL UNLINK
		EXISTS EXPIRE PEXPIRE EXPIREAT PEXPIREAT EXPIRETIME PEXPIRETIME TTL PTTL
		PERSIST TYPE RENAME RENAMENX DUMP RESTORE TOUCH COPY MOVE SORT SORT_RO
		GETBIT SETBIT BITCOUNT BITPOS BITFIELD BITFIELD_RO LPUSH RPUSH LPUSHX
		RPUSHX LPOP RPOP LLEN LRANGE LINDEX LSET LREM LTRIM LINSERT LPOS LMOVE
		RPOPLPUSH BLPOP BRPOP BLMOVE BRPOPLPUSH SADD SREM SMEMBERS SISMEMBER
		SMISMEMBER SCARD SPOP SRANDMEMBER SMOVE SINTER SUNION SDIFF SINTERSTORE
		SUNIONSTORE SDIFFSTORE SSCAN HSET HSETNX HGET HMSET HMGET HGETALL HDEL
		HEXISTS HLEN HKEYS HVALS HINCRBY HINCRBYFLOAT HSTRLEN HSCAN HRANDFIELD
		HEXPIRE HPEXPIRE HTTL HPTTL HPERSIST HGETDEL HGETEX HSETEX
		ZADD ZREM ZSCORE ZMSCORE ZINCRBY ZCARD ZCOUNT ZRANGE ZREVRANGE
		ZRANGEBYSCORE ZREVRANGEBYSCORE ZRANGEBYLEX ZREVRANGEBYLEX ZRANK ZREVRANK
		ZREMRANGEBYRANK ZREMRANGEBYSCORE ZREMRANGEBYLEX ZLEXCOUNT ZPOPMIN ZPOPMAX
		BZPOPMIN BZPOPMAX ZSCAN ZRANDMEMBER ZRANGESTORE ZUNIONSTORE ZINTERSTORE
		ZDIFFSTORE PFADD PFCOUNT PFMERGE GEOADD GEODIST GEOHASH GEOPOS GEORADIUS
		GEORADIUS_RO GEORADIUSBYMEMBER GEORADIUSBYMEMBER_RO GEOSEARCH GEOSEARCHSTORE XADD XRANGE XREVRANGE XLEN XDEL
		XTRIM XACK XCLAIM XAUTOCLAIM XPENDING XSETID WATCH PUBLISH SPUBLISH KEYS
		JSON.GET JSON.SET JSON.DEL JSON.MGET JSON.TYPE`, func(c *cmdInfo) { c.key = 1 })
	add(`SUBSCRIBE PSUBSCRIBE SSUBSCRIBE`, func(c *cmdInfo) { c.key, c.subs = 1, 1 })
	add(`UNSUBSCRIBE PUNSUBSCRIBE SUNSUBSCRIBE`, func(c *cmdInfo) { c.key, c.subs = 1, 2 })
	add(`BITOP LMPOP ZMPOP SINTERCARD ZINTERCARD ZUNION ZINTER ZDIFF`, func(c *cmdInfo) { c.key = 2 })
	add(`BLMPOP BZMPOP`, func(c *cmdInfo) { c.key = 3 })
	add(`PING ECHO SELECT MULTI EXEC DISCARD UNWATCH INFO DBSIZE FLUSHDB
		FLUSHALL SAVE BGSAVE BGREWRITEAOF TIME QUIT RESET RANDOMKEY LASTSAVE ROLE
		WAIT WAITAOF SWAPDB MONITOR SHUTDOWN SLAVEOF REPLICAOF READONLY READWRITE SCAN
		EVAL EVALSHA EVAL_RO EVALSHA_RO FCALL FCALL_RO XREAD XREADGROUP SYNC PSYNC
		REPLCONF ASKING LOLWUT FAILOVER`, func(*cmdInfo) {})
	add(`AUTH HELLO MIGRATE`, func(c *cmdInfo) { c.redact = true })
	add(`CLIENT CONFIG CLUSTER COMMAND MEMORY OBJECT SCRIPT XINFO XGROUP ACL
		FUNCTION DEBUG LATENCY MODULE SLOWLOG PUBSUB`, func(c *cmdInfo) { c.key, c.sub = 1, true })
}

// lookup finds a command by name, any case, without allocating.
func lookup(name []byte) *cmdInfo {
	if len(name) == 0 || len(name) > maxName {
		return nil
	}
	var buf [maxName]byte
	for i, c := range name {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		buf[i] = c
	}
	return commands[string(buf[:len(name)])]
}

// Detect says whether b, the first bytes of one direction, start a Redis
// command: a RESP array of bulk strings whose first element is a known
// command, or an inline command line. It does not allocate.
func Detect(b []byte) Verdict {
	if len(b) == 0 {
		return NeedMore
	}
	if b[0] != '*' {
		return detectInline(b)
	}
	n, i, v := detectNum(b, 1)
	if v != Yes {
		return v
	}
	if n < 1 || n > 1<<20 {
		return No
	}
	if i == len(b) {
		return NeedMore
	}
	if b[i] != '$' {
		return No
	}
	l, j, v := detectNum(b, i+1)
	if v != Yes {
		return v
	}
	if l < 1 || l > maxName {
		return No
	}
	if len(b) < j+l+2 {
		// Is what is there a prefix of a name? Only letters can be.
		for _, c := range b[j:min(len(b), j+l)] {
			if !nameByte(c) {
				return No
			}
		}
		return NeedMore
	}
	if b[j+l] != '\r' || b[j+l+1] != '\n' || lookup(b[j:j+l]) == nil {
		return No
	}
	return Yes
}

// detectNum reads the digits at b[i:] up to CRLF.
func detectNum(b []byte, i int) (n, next int, v Verdict) {
	start := i
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if i-start >= 9 {
			return 0, 0, No
		}
		n = n*10 + int(b[i]-'0')
	}
	if i == len(b) {
		return 0, 0, NeedMore
	}
	if i == start || b[i] != '\r' {
		return 0, 0, No
	}
	if i+1 == len(b) {
		return 0, 0, NeedMore
	}
	if b[i+1] != '\n' {
		return 0, 0, No
	}
	return n, i + 2, Yes
}

func nameByte(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || c == '_' || c == '.' || c == '-'
}

func detectInline(b []byte) Verdict {
	i := 0
	for i < len(b) && nameByte(b[i]) {
		i++
		if i > maxName {
			return No
		}
	}
	if i == len(b) {
		return NeedMore
	}
	if i == 0 || (b[i] != ' ' && b[i] != '\r' && b[i] != '\n') || lookup(b[:i]) == nil {
		return No
	}
	return Yes
}
