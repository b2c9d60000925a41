package features

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// The serving read. Load runs on every recommendation, and most of what it
// cost recsvc was not Redis's work but the client's: a command object, its
// arguments and a reply to parse for each of six reads, a string per reply
// element (two hashes, the shown list) and a map per hash. loadScript does
// the same six reads inside Redis and answers with one bulk string, which
// Load splits without copying: one command, one reply, one allocation for
// the reply. The keys and their formats are unchanged (the feature updater
// writes them as before), so nothing is migrated and old and new readers
// can run side by side.
//
// The reply is six parts, in the order of loadKeys; each part is its
// element count, '*', and per element its length, ':' and its bytes:
//
//	1*5:hello0*        the packed history "hello", an empty legacy list
//
// A missing string (GET's nil) is a part of no element, as is a missing
// hash or list. The legacy history list is read only while the user has no
// packed history (historyOf would ignore it otherwise).
const loadSource = `
local out, n = {}, 0
local function part(t)
  n = n + 1; out[n] = #t .. '*'
  for i = 1, #t do
    local v = t[i]
    n = n + 1; out[n] = #v .. ':'
    n = n + 1; out[n] = v
  end
end
local function str(v)
  if v then part({v}) else part({}) end
end
local hist = redis.call('GET', KEYS[1])
str(hist)
if hist and hist ~= '' then part({}) else part(redis.call('LRANGE', KEYS[2], 0, ARGV[1])) end
str(redis.call('GET', KEYS[3]))
part(redis.call('HGETALL', KEYS[4]))
part(redis.call('HGETALL', KEYS[5]))
part(redis.call('LRANGE', KEYS[6], 0, ARGV[2]))
return table.concat(out)`

var loadScript = redis.NewScript(loadSource)

// loadParts is the number of parts of loadScript's reply.
const loadParts = 6

// loadArgs returns the EVALSHA (or, with src, EVAL) arguments of
// loadScript for a user's session: the keys (history, legacy history,
// consumed filter, stats, session hash, shown list) and the two lists'
// read limits.
func (s *Store) loadArgs(userID, sessionID string, src bool) []any {
	args := make([]any, 0, 3+loadParts+2)
	if src {
		args = append(args, "eval", loadSource)
	} else {
		args = append(args, "evalsha", loadScript.Hash())
	}
	return append(args, loadParts,
		s.histKey(userID), s.legacyHistKey(userID), s.userKey(userID, "seen"),
		s.userKey(userID, "stats"), s.sessionKey(userID, sessionID), s.shownKey(userID, sessionID),
		s.history-1, ShownMax-1)
}

// isNoScript tells whether err is Redis's answer to an EVALSHA of a script
// it does not have (a restart or a failover empties its script cache).
func isNoScript(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}

// loadReply reads a user's state with loadScript and returns its reply:
// through the auto-pipeliner when loads are batched, else as a command of
// its own. A script Redis lacks is sent again whole (EVAL), which also
// caches it.
func (s *Store) loadReply(ctx context.Context, userID, sessionID string) (string, error) {
	cmd := redis.NewStringCmd(ctx, s.loadArgs(userID, sessionID, false)...)
	err := s.process(ctx, cmd)
	if isNoScript(err) {
		cmd = redis.NewStringCmd(ctx, s.loadArgs(userID, sessionID, true)...)
		err = s.process(ctx, cmd)
	}
	if err != nil {
		// Not cmd.Val(): a batched command's value waits for its batch,
		// which a load past its deadline does not.
		return "", err
	}
	return cmd.Val(), nil
}

// process sends cmd through the auto-pipeliner when loads are batched
// (waiting for it only until ctx is done: batch.go), else on its own.
func (s *Store) process(ctx context.Context, cmd redis.Cmder) error {
	if s.batch != nil {
		return s.batch.Submit(ctx, cmd).WaitContext(ctx)
	}
	return s.rdb.Process(ctx, cmd)
}

// errLoadReply reports a reply of loadScript that does not parse: a bug
// (or a server that is not Redis), not a user's state.
var errLoadReply = errors.New("features: malformed user state reply")

// splitLoad splits loadScript's reply into its parts. The elements share
// b's memory; one slice holds them all.
func splitLoad(b string) (parts [loadParts][]string, err error) {
	var counts [loadParts]int
	total, i := 0, 0
	for p := range counts {
		var c int
		if c, i = loadNumber(b, i, '*'); c < 0 {
			return parts, errLoadReply
		}
		for range c {
			var n int
			if n, i = loadNumber(b, i, ':'); n < 0 || n > len(b)-i {
				return parts, errLoadReply
			}
			i += n
		}
		counts[p] = c
		total += c
	}
	if i != len(b) {
		return parts, errLoadReply
	}
	els := make([]string, 0, total)
	i = 0
	for p, c := range counts {
		_, i = loadNumber(b, i, '*')
		start := len(els)
		for range c {
			var n int
			n, i = loadNumber(b, i, ':')
			els = append(els, b[i:i+n])
			i += n
		}
		if c > 0 {
			parts[p] = els[start:len(els):len(els)]
		}
	}
	return parts, nil
}

// loadNumber parses the decimal number at b[i:] that ends with end, and
// returns it and the index after end; -1 if there is none.
func loadNumber(b string, i int, end byte) (int, int) {
	n, start := 0, i
	for ; i < len(b) && b[i] != end; i++ {
		c := b[i]
		if c < '0' || c > '9' || i-start > 9 {
			return -1, i
		}
		n = n*10 + int(c-'0')
	}
	if i == start || i == len(b) {
		return -1, i
	}
	return n, i + 1
}

// loadState is Load's read: the script's reply, split.
func (s *Store) loadState(ctx context.Context, userID, sessionID string) (userRaw, error) {
	b, err := s.loadReply(ctx, userID, sessionID)
	if err != nil {
		return userRaw{}, err
	}
	parts, err := splitLoad(b)
	if err != nil {
		return userRaw{}, fmt.Errorf("%w (%d bytes)", err, len(b))
	}
	r := userRaw{legacy: parts[1], stats: parts[3], sess: parts[4], shown: parts[5]}
	if len(parts[0]) > 0 {
		r.hist = parts[0][0]
	}
	if len(parts[2]) > 0 {
		r.seen = parts[2][0]
	}
	return r, nil
}
