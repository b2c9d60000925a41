package events

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/segmentio/kafka-go"
)

// ErrSpoolFull is returned by Spool.Append when the record would take the
// spool past SpoolOptions.MaxBytes.
var ErrSpoolFull = errors.New("events: spool full")

// ErrSpoolClosed is returned by Spool.Append after Close.
var ErrSpoolClosed = errors.New("events: spool closed")

// SpoolOptions configures OpenSpool. Zero values take the defaults noted.
type SpoolOptions struct {
	// MaxBytes bounds the spool's files (default 256 MiB, about a million
	// feedback events); Append refuses records beyond it.
	MaxBytes int64
	// SegmentBytes is the file size at which the spool starts a new file
	// (default 8 MiB, at most MaxBytes/4): delivered records are freed a
	// file at a time, so a spool that is being drained while it fills
	// does not have to empty completely first.
	SegmentBytes int64
	// Logger receives recovery notes (default slog.Default()).
	Logger *slog.Logger
}

// maxSpoolRecord bounds one record, like the broker's default message size.
const maxSpoolRecord = 1 << 20

// Spool is a write-ahead log of Kafka messages on local disk, for events
// that were acknowledged to a client while Kafka could not take them. A
// record is on disk and fsync'd when Append returns; Peek and Commit hand
// records to a deliverer oldest first, and a restarted process finds what
// was not committed and delivers it again. Delivery is at least once: a
// crash between a delivery and its Commit (or a lost cursor file) repeats
// records, which consumers drop by event_id.
//
// On disk, a directory holds numbered segment files ("00000000000000000001.wal")
// of records [length uint32][CRC-32C uint32][payload], the payload being
// uvarint-prefixed topic and key followed by the value; a "cursor" file
// names the first undelivered record (segment and offset); a "LOCK" file is
// held with flock while the Spool is open, so two processes never share a
// spool. A torn record at the end of a file (a crash mid-write, never
// acknowledged) is cut off when the spool is opened.
//
// Goroutines: OpenSpool starts one, the writer, which owns the file being
// appended to and batches concurrent Appends into one write and one fsync
// (group commit). Close stops it. Peek and Commit run on the caller's
// goroutine; they are meant for a single deliverer.
type Spool struct {
	dir  string
	opts SpoolOptions
	log  *slog.Logger
	lock *os.File

	ops       chan spoolOp
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	// mu guards the fields below, shared by the writer and the deliverer.
	mu      sync.Mutex
	segs    []*segment // oldest first; the last is being appended to
	head    int64      // offset in segs[0] of the first undelivered record
	records int64      // records not yet committed
	size    int64      // bytes of all segment files
	reader  *os.File   // open on segs[0], for Peek
	readSeg uint64

	// pending mirrors records > 0 for lock-free reads.
	pending atomic.Bool
}

type segment struct {
	id   uint64
	size int64 // bytes of whole records (written and fsync'd)
}

type spoolOp struct {
	data    []byte // encoded records (append)
	n       int    // records in data
	release bool   // reset the spool if everything has been delivered
	reply   chan error
}

// OpenSpool opens (creating it if needed) the spool in dir, recovers it and
// starts its writer.
func OpenSpool(dir string, opts SpoolOptions) (*Spool, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 256 << 20
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 8 << 20
	}
	opts.SegmentBytes = max(min(opts.SegmentBytes, opts.MaxBytes/4), 1)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("events: spool: %w", err)
	}
	lock, err := lockDir(filepath.Join(dir, "LOCK"))
	if err != nil {
		return nil, fmt.Errorf("events: spool %s: %w", dir, err)
	}
	s := &Spool{dir: dir, opts: opts, log: opts.Logger.With("component", "events.spool", "dir", dir), lock: lock,
		ops: make(chan spoolOp, 256), stop: make(chan struct{}), done: make(chan struct{})}
	active, err := s.recover()
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("events: spool %s: %w", dir, err)
	}
	go s.run(active)
	return s, nil
}

func (s *Spool) segPath(id uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d.wal", id))
}

// recover lists the segments, cuts torn or corrupt tails, counts the
// undelivered records from the cursor on and opens the last segment for
// appending.
func (s *Spool) recover() (*os.File, error) {
	names, err := filepath.Glob(filepath.Join(s.dir, "*.wal"))
	if err != nil {
		return nil, err
	}
	var ids []uint64
	for _, n := range names {
		id, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(n), ".wal"), 10, 64)
		if err == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	curSeg, curOff := s.readCursor()
	for _, id := range ids {
		if id < curSeg && slices.Contains(ids, curSeg) {
			// Delivered entirely; a crash came between the cursor write
			// and the removal.
			_ = os.Remove(s.segPath(id))
			continue
		}
		f, err := os.OpenFile(s.segPath(id), os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		start := int64(0)
		if id == curSeg {
			start = curOff
		}
		end, n, boundary, err := scanSegment(f, start)
		_ = f.Close()
		if err != nil {
			return nil, err
		}
		if !boundary {
			// The cursor is not on a record boundary (a cursor from a
			// damaged file): deliver the whole segment again.
			s.log.Warn("spool cursor not on a record boundary; redelivering the segment", "segment", id)
			start = 0
			if f, err = os.Open(s.segPath(id)); err != nil {
				return nil, err
			}
			end, n, _, err = scanSegment(f, 0)
			_ = f.Close()
			if err != nil {
				return nil, err
			}
		}
		fi, err := os.Stat(s.segPath(id))
		if err != nil {
			return nil, err
		}
		if fi.Size() != end {
			s.log.Warn("spool segment ends in a torn or corrupt record; cutting it off", "segment", id, "valid_bytes", end, "file_bytes", fi.Size())
			if err := os.Truncate(s.segPath(id), end); err != nil {
				return nil, err
			}
		}
		if len(s.segs) == 0 {
			s.head = start
		}
		s.segs = append(s.segs, &segment{id: id, size: end})
		s.records += int64(n)
		s.size += end
	}
	if len(s.segs) == 0 {
		s.segs = []*segment{{id: 1}}
	}
	last := s.segs[len(s.segs)-1]
	f, err := os.OpenFile(s.segPath(last.id), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	if err := syncDir(s.dir); err != nil {
		_ = f.Close()
		return nil, err
	}
	s.pending.Store(s.records > 0)
	if s.records > 0 {
		s.log.Info("spool holds undelivered events from an earlier run", "events", s.records, "bytes", s.size)
	}
	return f, nil
}

// scanSegment validates the records of f from start on; end is the offset
// after the last whole, intact record, n the number of records from start
// to end, boundary whether start is where a record begins (scanning from 0
// to check when start > 0).
func scanSegment(f *os.File, start int64) (end int64, n int, boundary bool, err error) {
	r := &offsetReader{r: f}
	boundary = start == 0
	var hdr [8]byte
	for {
		if r.off == start {
			boundary = true
		}
		at := r.off
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return at, n, boundary, nil
		}
		l := binary.LittleEndian.Uint32(hdr[:4])
		if l > maxSpoolRecord {
			return at, n, boundary, nil
		}
		payload := make([]byte, l)
		if _, err := io.ReadFull(r, payload); err != nil || crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
			return at, n, boundary, nil
		}
		if at >= start {
			n++
		}
	}
}

type offsetReader struct {
	r   io.Reader
	off int64
}

func (o *offsetReader) Read(p []byte) (int, error) {
	n, err := o.r.Read(p)
	o.off += int64(n)
	return n, err
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (s *Spool) readCursor() (seg uint64, off int64) {
	b, err := os.ReadFile(filepath.Join(s.dir, "cursor"))
	if err != nil {
		return 0, 0
	}
	a, c, ok := strings.Cut(strings.TrimSpace(string(b)), " ")
	if !ok {
		return 0, 0
	}
	seg, err1 := strconv.ParseUint(a, 10, 64)
	off, err2 := strconv.ParseInt(c, 10, 64)
	if err1 != nil || err2 != nil || off < 0 {
		return 0, 0
	}
	return seg, off
}

// writeCursor records the first undelivered record. It is not fsync'd: a
// cursor lost in a crash only means records delivered again.
func (s *Spool) writeCursor(seg uint64, off int64) error {
	tmp := filepath.Join(s.dir, "cursor.tmp")
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(seg, 10)+" "+strconv.FormatInt(off, 10)+"\n"), 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.dir, "cursor"))
}

// encodeRecord appends m as one record to dst.
func encodeRecord(dst []byte, m kafka.Message) ([]byte, error) {
	payload := make([]byte, 0, 2*binary.MaxVarintLen32+len(m.Topic)+len(m.Key)+len(m.Value))
	payload = binary.AppendUvarint(payload, uint64(len(m.Topic)))
	payload = append(payload, m.Topic...)
	payload = binary.AppendUvarint(payload, uint64(len(m.Key)))
	payload = append(payload, m.Key...)
	payload = append(payload, m.Value...)
	if len(payload) > maxSpoolRecord {
		return dst, fmt.Errorf("events: spool: a record of %d bytes exceeds %d", len(payload), maxSpoolRecord)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(payload, castagnoli))
	return append(dst, payload...), nil
}

func decodePayload(p []byte) (kafka.Message, error) {
	var m kafka.Message
	tl, n := binary.Uvarint(p)
	if n <= 0 || uint64(len(p)-n) < tl {
		return m, errors.New("bad topic length")
	}
	m.Topic, p = string(p[n:n+int(tl)]), p[n+int(tl):]
	kl, n := binary.Uvarint(p)
	if n <= 0 || uint64(len(p)-n) < kl {
		return m, errors.New("bad key length")
	}
	if kl > 0 {
		m.Key = slices.Clone(p[n : n+int(kl)])
	}
	m.Value = slices.Clone(p[n+int(kl):])
	return m, nil
}

// Append writes msgs to the spool and returns once they are on disk
// (written and fsync'd), or with ErrSpoolFull when they do not fit, or
// with ctx's error if ctx ends first (the records may then still be
// written). Concurrent calls share one fsync.
func (s *Spool) Append(ctx context.Context, msgs ...kafka.Message) error {
	var data []byte
	for _, m := range msgs {
		var err error
		if data, err = encodeRecord(data, m); err != nil {
			return err
		}
	}
	return s.do(ctx, spoolOp{data: data, n: len(msgs)})
}

func (s *Spool) do(ctx context.Context, op spoolOp) error {
	op.reply = make(chan error, 1)
	select {
	case s.ops <- op:
	case <-s.stop:
		return ErrSpoolClosed
	case <-ctx.Done():
		return fmt.Errorf("events: spool: gave up waiting for the writer: %w", ctx.Err())
	}
	select {
	case err := <-op.reply:
		return err
	case <-s.done:
		// The writer stopped; it answered op if it took it.
		select {
		case err := <-op.reply:
			return err
		default:
			return ErrSpoolClosed
		}
	case <-ctx.Done():
		return fmt.Errorf("events: spool: gave up waiting for the fsync: %w", ctx.Err())
	}
}

// run is the writer goroutine: it takes the queued operations in batches,
// writes the appends of a batch with one write and one fsync, and answers
// them all.
func (s *Spool) run(active *os.File) {
	defer close(s.done)
	defer func() { _ = active.Close() }()
	batch := make([]spoolOp, 0, cap(s.ops))
	for {
		batch = batch[:0]
		select {
		case op := <-s.ops:
			batch = append(batch, op)
		case <-s.stop:
			return
		}
	more:
		for len(batch) < cap(batch) {
			select {
			case op := <-s.ops:
				batch = append(batch, op)
			default:
				break more
			}
		}
		active = s.writeBatch(active, batch)
	}
}

func (s *Spool) writeBatch(active *os.File, batch []spoolOp) *os.File {
	s.mu.Lock()
	size := s.size
	cur := s.segs[len(s.segs)-1]
	s.mu.Unlock()

	var buf []byte
	var accepted []int
	written, records := int64(0), int64(0)
	for i, op := range batch {
		if op.release {
			continue
		}
		if size+written+int64(len(op.data)) > s.opts.MaxBytes {
			op.reply <- ErrSpoolFull
			continue
		}
		if cur.size+written > 0 && cur.size+written+int64(len(op.data)) > s.opts.SegmentBytes {
			// Close the segment: what is in buf goes to it first.
			if err := s.flush(active, buf); err != nil {
				s.fail(batch, accepted, err)
				return active
			}
			s.commitWrite(cur, written, records)
			s.answer(batch, accepted)
			buf, accepted, written, records = buf[:0], accepted[:0], 0, 0
			next, err := s.rotate(active, cur)
			if err != nil {
				op.reply <- err
				continue
			}
			active = next
			s.mu.Lock()
			cur, size = s.segs[len(s.segs)-1], s.size
			s.mu.Unlock()
		}
		buf = append(buf, op.data...)
		written += int64(len(op.data))
		records += int64(op.n)
		accepted = append(accepted, i)
	}
	if len(accepted) > 0 {
		if err := s.flush(active, buf); err != nil {
			s.fail(batch, accepted, err)
			return active
		}
		s.commitWrite(cur, written, records)
		s.answer(batch, accepted)
	}
	for _, op := range batch {
		if op.release {
			op.reply <- s.release(active)
		}
	}
	return active
}

// flush writes buf to the active segment and fsyncs it.
func (s *Spool) flush(f *os.File, buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	if _, err := f.Write(buf); err != nil {
		return fmt.Errorf("events: spool write: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("events: spool fsync: %w", err)
	}
	return nil
}

// fail answers the accepted operations of a failed write with err and cuts
// the segment back to its last whole record, so a partial write is never
// read as data.
func (s *Spool) fail(batch []spoolOp, accepted []int, err error) {
	s.log.Error("spool write failed; events refused", "err", err)
	s.mu.Lock()
	cur := s.segs[len(s.segs)-1]
	_ = os.Truncate(s.segPath(cur.id), cur.size)
	s.mu.Unlock()
	for _, i := range accepted {
		batch[i].reply <- err
	}
}

func (s *Spool) answer(batch []spoolOp, accepted []int) {
	for _, i := range accepted {
		batch[i].reply <- nil
	}
}

func (s *Spool) commitWrite(cur *segment, written, records int64) {
	s.mu.Lock()
	cur.size += written
	s.size += written
	s.records += records
	s.pending.Store(s.records > 0)
	s.mu.Unlock()
}

// rotate closes the full segment (already fsync'd) and starts the next.
func (s *Spool) rotate(active *os.File, cur *segment) (*os.File, error) {
	next := &segment{id: cur.id + 1}
	f, err := os.OpenFile(s.segPath(next.id), os.O_RDWR|os.O_CREATE|os.O_APPEND|os.O_EXCL, 0o640)
	if err != nil {
		return active, fmt.Errorf("events: spool: new segment: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		_ = f.Close()
		_ = os.Remove(s.segPath(next.id))
		return active, fmt.Errorf("events: spool: %w", err)
	}
	_ = active.Close()
	s.mu.Lock()
	s.segs = append(s.segs, next)
	s.mu.Unlock()
	return f, nil
}

// release empties the spool files once every record has been delivered, so
// the delivered records of the last segment stop counting against MaxBytes.
func (s *Spool) release(active *os.File) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.records > 0 || len(s.segs) != 1 || s.segs[0].size == 0 {
		return nil
	}
	if err := active.Truncate(0); err != nil {
		return fmt.Errorf("events: spool: %w", err)
	}
	s.size, s.segs[0].size, s.head = 0, 0, 0
	if s.reader != nil {
		_ = s.reader.Close()
		s.reader = nil
	}
	return s.writeCursor(s.segs[0].id, 0)
}

// Pending reports whether the spool holds records not yet committed.
func (s *Spool) Pending() bool { return s.pending.Load() }

// SpoolStats are a Spool's current totals.
type SpoolStats struct {
	Records  int64 // undelivered records
	Bytes    int64 // bytes of the spool's files
	MaxBytes int64
}

// Stats returns the current totals.
func (s *Spool) Stats() SpoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SpoolStats{Records: s.records, Bytes: s.size, MaxBytes: s.opts.MaxBytes}
}

// SpoolPosition is where a Peek ended, for Commit.
type SpoolPosition struct {
	seg uint64
	off int64
	n   int
}

// Peek returns up to max of the oldest undelivered records (at most about
// 1 MiB of them) without removing them, and the position to Commit once
// they are delivered.
func (s *Spool) Peek(max int) ([]kafka.Message, SpoolPosition, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Move past a fully delivered segment that is no longer appended to.
	for len(s.segs) > 1 && s.head >= s.segs[0].size {
		s.dropFirst()
	}
	seg := s.segs[0]
	pos := SpoolPosition{seg: seg.id, off: s.head}
	if s.head >= seg.size || max <= 0 {
		return nil, pos, nil
	}
	if s.reader == nil || s.readSeg != seg.id {
		if s.reader != nil {
			_ = s.reader.Close()
		}
		f, err := os.Open(s.segPath(seg.id))
		if err != nil {
			return nil, pos, fmt.Errorf("events: spool: %w", err)
		}
		s.reader, s.readSeg = f, seg.id
	}
	n := min(seg.size-s.head, 1<<20+8)
	buf := make([]byte, n)
	if _, err := s.reader.ReadAt(buf, s.head); err != nil {
		return nil, pos, fmt.Errorf("events: spool: read: %w", err)
	}
	var msgs []kafka.Message
	for len(msgs) < max && len(buf) >= 8 {
		l := int64(binary.LittleEndian.Uint32(buf[:4]))
		if int64(len(buf)) < 8+l {
			break
		}
		payload := buf[8 : 8+l]
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(buf[4:8]) {
			return nil, pos, fmt.Errorf("events: spool: segment %d: corrupt record at %d", seg.id, pos.off)
		}
		m, err := decodePayload(payload)
		if err != nil {
			return nil, pos, fmt.Errorf("events: spool: segment %d at %d: %w", seg.id, pos.off, err)
		}
		msgs = append(msgs, m)
		buf = buf[8+l:]
		pos.off += 8 + l
		pos.n++
	}
	if len(msgs) == 0 {
		return nil, pos, fmt.Errorf("events: spool: segment %d: record at %d does not fit the read buffer", seg.id, s.head)
	}
	return msgs, pos, nil
}

// Commit marks the records of a Peek delivered; fully delivered segment
// files are removed, and an empty spool is released.
func (s *Spool) Commit(pos SpoolPosition) error {
	s.mu.Lock()
	if len(s.segs) == 0 || s.segs[0].id != pos.seg || pos.off < s.head {
		s.mu.Unlock()
		return errors.New("events: spool: commit of a stale position")
	}
	s.head = pos.off
	s.records -= int64(pos.n)
	s.pending.Store(s.records > 0)
	for len(s.segs) > 1 && s.head >= s.segs[0].size {
		s.dropFirst()
	}
	err := s.writeCursor(s.segs[0].id, s.head)
	empty := s.records == 0
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("events: spool: cursor: %w", err)
	}
	if empty {
		return s.do(context.Background(), spoolOp{release: true})
	}
	return nil
}

// dropFirst removes the first segment; s.mu is held.
func (s *Spool) dropFirst() {
	first := s.segs[0]
	if s.reader != nil && s.readSeg == first.id {
		_ = s.reader.Close()
		s.reader = nil
	}
	if err := os.Remove(s.segPath(first.id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("could not remove a delivered spool segment", "segment", first.id, "err", err)
	}
	s.size -= first.size
	s.segs = s.segs[1:]
	s.head = 0
}

// Close stops the writer (Appends it has not taken yet fail with
// ErrSpoolClosed) and closes the files; what was not committed stays for
// the next OpenSpool. It is safe to call more than once.
func (s *Spool) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		s.mu.Lock()
		if s.reader != nil {
			_ = s.reader.Close()
			s.reader = nil
		}
		s.mu.Unlock()
		_ = s.lock.Close()
	})
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
