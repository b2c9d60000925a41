package features

import (
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/novarec/novarec/recommend"
)

// A user's history is read on every recommendation, so it is stored as one
// packed string ({u:ID}:h) that Redis answers as a single bulk reply and
// Load decodes without an allocation per entry (the item ids share the
// reply's memory), rather than as a list of up to 200 "TSms|N|itemID"
// strings ({u:ID}:hist), which cost Redis 200 replies to write and recsvc
// 200 strings to allocate and parse. The packed form, newest first:
//
//	byte  packedVersion
//	per entry: uvarint(len(itemID)<<1 | novel), itemID, varint(TS of the
//	           first entry, then previous TS - this TS)
//
// Migration: lists written before stay readable (Load, RecentHistory and
// ScanHistories fall back to {u:ID}:hist while {u:ID}:h is absent; Load
// and ApplyFeedback look for the list, by a second round trip, only for a
// user with a stats hash, which every version writing a list wrote with
// it), and the first feedback ApplyFeedback applies rewrites the user's
// history packed (empty, if need be) and deletes the list, as Save does;
// nothing needs to run. The
// feature updaters (the only writers of histories) must not run old and
// new versions at once: an old one would append to a list a new reader
// no longer reads once the user has a packed history.

const packedVersion = 1

func (s *Store) histKey(userID string) string       { return s.userKey(userID, "h") }
func (s *Store) legacyHistKey(userID string) string { return s.userKey(userID, "hist") }

// appendPacked appends hist in the packed form.
func appendPacked(dst []byte, hist []recommend.Consumed) []byte {
	dst = append(dst, packedVersion)
	var prev int64
	for i, c := range hist {
		n := uint64(len(c.ItemID)) << 1
		if c.Novel {
			n |= 1
		}
		dst = binary.AppendUvarint(dst, n)
		dst = append(dst, c.ItemID...)
		if i == 0 {
			dst = binary.AppendVarint(dst, c.TS)
		} else {
			dst = binary.AppendVarint(dst, prev-c.TS)
		}
		prev = c.TS
	}
	return dst
}

// decodePacked decodes appendPacked's form, at most limit entries (limit < 0:
// all). Item ids share b's memory. A malformed tail (or an unknown
// version) is dropped: the state is derived and the next write repairs it.
//
// The entries are counted before the slice is made, so that it is made at
// its length: Load decodes a history on every request, and a capacity
// guessed from len(b) (a short id's entry is 3 bytes) came to twice the
// entries' 32 bytes each, the largest allocation of a request. Counting
// walks the varints once more, which costs less than zeroing and
// collecting the unused half.
func decodePacked(b string, limit int) []recommend.Consumed {
	if len(b) < 2 || b[0] != packedVersion {
		return nil
	}
	n := 0
	for i := 1; i < len(b) && n != limit; n++ {
		_, _, _, next, ok := packedEntry(b, i)
		if !ok {
			break
		}
		i = next
	}
	if n == 0 {
		return nil
	}
	out := make([]recommend.Consumed, n)
	var prev int64
	for j, i := 0, 1; j < n; j++ {
		id, novel, d, next, _ := packedEntry(b, i)
		ts := d
		if j > 0 {
			ts = prev - d
		}
		out[j] = recommend.Consumed{ItemID: id, TS: ts, Novel: novel}
		prev, i = ts, next
	}
	return out
}

// packedEntry reads the entry of the packed form b that starts at i: its
// item id (sharing b's memory), whether it was novel, its TS field (the
// first entry's TS, then the previous TS minus this one) and where the
// next entry starts; ok is false if the entry is malformed or cut short.
func packedEntry(b string, i int) (id string, novel bool, d int64, next int, ok bool) {
	n, k := uvarint(b[i:])
	if k <= 0 || n>>1 > uint64(len(b)-i-k) {
		return "", false, 0, 0, false
	}
	i += k
	id = b[i : i+int(n>>1)]
	i += int(n >> 1)
	d, k = varint(b[i:])
	if k <= 0 || id == "" {
		return "", false, 0, 0, false
	}
	return id, n&1 == 1, d, i + k, true
}

// uvarint and varint are binary.Uvarint and binary.Varint on a string,
// which saves copying the reply to a []byte.
func uvarint(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				return 0, -1
			}
			return x | uint64(c)<<shift, i + 1
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	return 0, 0
}

func varint(s string) (int64, int) {
	ux, n := uvarint(s)
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x, n
}

// readHistory decodes the packed history if the user has one, else the
// legacy list; at most limit entries (limit < 0: all).
func readHistory(packed string, legacy []string, limit int) []recommend.Consumed {
	var h []recommend.Consumed
	if packed != "" {
		h = decodePacked(packed, limit)
	} else {
		h = decodeHistory(legacy)
	}
	if len(h) == 0 {
		return nil
	}
	if limit >= 0 && len(h) > limit {
		h = h[:limit]
	}
	return h
}

// parseEntry decodes an entry of the legacy history list, "TSms|N|itemID"
// (N = 1 if novel; the item id comes last so it may itself contain '|');
// ok is false for malformed input. ItemID shares e's memory.
func parseEntry(e string) (c recommend.Consumed, ok bool) {
	i := strings.IndexByte(e, '|')
	if i <= 0 || len(e) < i+4 || e[i+2] != '|' {
		return c, false
	}
	ts, err := strconv.ParseInt(e[:i], 10, 64)
	if err != nil {
		return c, false
	}
	switch e[i+1] {
	case '1':
		c.Novel = true
	case '0':
	default:
		return c, false
	}
	c.TS, c.ItemID = ts, e[i+3:]
	return c, true
}

// decodeHistory decodes a legacy history list, skipping malformed entries.
func decodeHistory(entries []string) []recommend.Consumed {
	if len(entries) == 0 {
		return nil
	}
	out := make([]recommend.Consumed, 0, len(entries))
	for _, e := range entries {
		if c, ok := parseEntry(e); ok {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
