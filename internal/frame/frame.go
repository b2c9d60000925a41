// Package frame is the envelope of novarec's binary blobs (model snapshots,
// trainer checkpoints): a 4-byte magic, a schema version, the payload
// length and a CRC-32C of the payload, so a reader rejects another kind of
// blob, a schema it does not know, truncation and corruption before it
// decodes anything.
//
//	magic [4]byte | schema uint16 | reserved uint16 | length uint64 | payload | CRC-32C(payload) uint32
//
// Integers are big-endian.
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

const headerLen = 4 + 2 + 2 + 8

// Errors of Open; callers wrap them into their own.
var (
	ErrCorrupt = errors.New("corrupt")
	ErrSchema  = errors.New("schema not supported")
)

var table = crc32.MakeTable(crc32.Castagnoli)

// Seal wraps payload in the envelope. magic must be 4 bytes.
func Seal(magic string, schema uint16, payload []byte) []byte {
	out := make([]byte, 0, headerLen+len(payload)+4)
	out = append(out, magic[:4]...)
	out = binary.BigEndian.AppendUint16(out, schema)
	out = binary.BigEndian.AppendUint16(out, 0)
	out = binary.BigEndian.AppendUint64(out, uint64(len(payload)))
	out = append(out, payload...)
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(payload, table))
}

// Open checks the envelope and returns the payload (a view of b).
func Open(magic string, schema uint16, b []byte) ([]byte, error) {
	if len(b) < headerLen+4 || string(b[:4]) != magic {
		return nil, fmt.Errorf("%w: bad header", ErrCorrupt)
	}
	if v := binary.BigEndian.Uint16(b[4:6]); v != schema {
		return nil, fmt.Errorf("%w: schema %d, this build reads %d", ErrSchema, v, schema)
	}
	if n := binary.BigEndian.Uint64(b[8:16]); n != uint64(len(b)-headerLen-4) {
		return nil, fmt.Errorf("%w: payload length %d, have %d bytes", ErrCorrupt, n, len(b)-headerLen-4)
	}
	payload := b[headerLen : len(b)-4]
	if crc32.Checksum(payload, table) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return payload, nil
}
