package movielens

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/novarec/novarec/catalog"
)

// noGenres is how the CSV (and ml-10m) files mark a movie without genres.
const noGenres = "(no genres listed)"

// genres100K are the ml-100k genre flags of u.item, in file order (u.genre).
// "unknown" yields no category.
var genres100K = [19]string{
	"unknown", "Action", "Adventure", "Animation", "Children's", "Comedy",
	"Crime", "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror",
	"Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
}

// text is what the field parsers accept: encoding/csv yields strings, the
// line-oriented readers byte slices that must not be copied on the hot path.
type text interface{ string | []byte }

// ids turns numeric ids into canonical decimal strings, one string per id.
type ids map[uint64]string

func (m ids) parse(s string) (string, bool) { return parseID(m, s) }

func parseID[T text](m ids, s T) (string, bool) {
	n, ok := parseUint(s)
	if !ok {
		return "", false
	}
	id, ok := m[n]
	if !ok {
		id = strconv.FormatUint(n, 10)
		m[n] = id
	}
	return id, true
}

// parseUint parses a non-empty run of at most 19 ASCII digits.
func parseUint[T text](s T) (uint64, bool) {
	if len(s) == 0 || len(s) > 19 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i] - '0'
		if c > 9 {
			return 0, false
		}
		n = n*10 + uint64(c)
	}
	return n, true
}

// parseInt parses an optionally '-'-signed decimal int64.
func parseInt[T text](s T) (int64, bool) {
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	n, ok := parseUint(s)
	if !ok || n > math.MaxInt64 {
		return 0, false
	}
	if neg {
		return -int64(n), true
	}
	return int64(n), true
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// parseRating parses a finite rating. Plain decimals ("4", "3.5") take a
// fast path that is exact: an integer below 2^53 divided by an exact power of
// ten is correctly rounded. Anything else goes to strconv.
func parseRating[T text](s T) (float64, bool) {
	var mant uint64
	digits, frac, dot := 0, 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			mant = mant*10 + uint64(c-'0')
			digits++
			if dot {
				frac++
			}
		case c == '.' && !dot:
			dot = true
		default:
			digits = -1
		}
		if digits < 0 || digits > 15 {
			break
		}
	}
	if digits > 0 && digits <= 15 && (!dot || frac > 0) {
		return float64(mant) / pow10[frac], true
	}
	v, err := strconv.ParseFloat(string(s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}

// parseTS parses a Unix time in seconds and returns it in milliseconds.
func parseTS[T text](s T) (int64, error) {
	sec, ok := parseInt(s)
	if !ok {
		return 0, fmt.Errorf("bad timestamp %q: want Unix seconds", s)
	}
	if sec > math.MaxInt64/1000 || sec < math.MinInt64/1000 {
		return 0, fmt.Errorf("timestamp %q out of range", s)
	}
	return sec * 1000, nil
}

// decodeTitle returns the title as UTF-8. The ml-1m and ml-100k files are
// ISO-8859-1 (Latin-1), whose bytes are the code points U+0000–U+00FF; text
// that is already valid UTF-8 (the CSV files, ml-10m) is kept as it is. A
// Latin-1 title that happens to be valid UTF-8 would need a byte in
// 0xC2–0xF4 followed by one in 0x80–0xBF ("Ã©"), which titles do not hold.
func decodeTitle[T text](s T) string {
	if isValidUTF8(s) {
		return string(s)
	}
	var b strings.Builder
	b.Grow(len(s) + len(s)/4)
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}

func isValidUTF8[T text](s T) bool {
	switch v := any(s).(type) {
	case string:
		return utf8.ValidString(v)
	case []byte:
		return utf8.Valid(v)
	}
	panic("unreachable")
}

// lines calls fn with each non-empty line of r (without "\n" or "\r\n") and
// its 1-based line number. Blank lines, a missing final newline and a UTF-8
// byte order mark are tolerated.
func lines(r io.Reader, name string, fn func(n int, line []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if n == 1 {
			line = bytes.TrimPrefix(line, []byte("\uFEFF"))
		}
		if len(line) == 0 {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return &ParseError{File: name, Line: n + 1, Err: errors.New("line longer than 1 MiB")}
		}
		return fmt.Errorf("movielens: reading %s: %w", name, err)
	}
	return nil
}

// csvReader reads a CSV file with a header naming at least cols (matched
// case-insensitively, in any order) and returns the reader, positioned after
// the header, and the index of each of cols.
func csvReader(r io.Reader, name string, cols ...string) (*csv.Reader, []int, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, nil, &ParseError{File: name, Line: 1, Err: fmt.Errorf("empty file, want a header %s", strings.Join(cols, ","))}
	}
	if err != nil {
		return nil, nil, csvError(name, err)
	}
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\uFEFF")
	}
	idx := make([]int, len(cols))
	for i, c := range cols {
		idx[i] = -1
		for j, h := range header {
			if strings.EqualFold(strings.TrimSpace(h), c) {
				idx[i] = j
				break
			}
		}
		if idx[i] < 0 {
			return nil, nil, &ParseError{File: name, Line: 1, Err: fmt.Errorf("header %q lacks column %q (want %s)",
				strings.Join(header, ","), c, strings.Join(cols, ","))}
		}
	}
	return cr, idx, nil
}

// csvError converts an encoding/csv error into a ParseError.
func csvError(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		e := pe.Err
		if !errors.Is(e, csv.ErrFieldCount) {
			e = fmt.Errorf("column %d: %w", pe.Column, e)
		}
		return &ParseError{File: name, Line: pe.Line, Err: e}
	}
	return fmt.Errorf("movielens: reading %s: %w", name, err)
}

// readCSVRecords reads every record after the header, passing fn the
// record's first line number.
func readCSVRecords(cr *csv.Reader, name string, fn func(line int, rec []string) error) error {
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if errors.Is(err, csv.ErrFieldCount) {
			var pe *csv.ParseError
			errors.As(err, &pe)
			return &ParseError{File: name, Line: pe.Line,
				Err: fmt.Errorf("%d fields, want %d", len(rec), cr.FieldsPerRecord)}
		}
		if err != nil {
			return csvError(name, err)
		}
		line, _ := cr.FieldPos(0)
		if err := fn(line, rec); err != nil {
			return err
		}
	}
}

// movieParser accumulates items from a movies file.
type movieParser struct {
	name   string
	items  []catalog.Item
	titles map[string]string // nil when titles are not wanted
	lineOf map[string]int    // id -> line, to report duplicates
	ids    ids
	genres map[string]string // interned genre names
}

func newMovieParser(name string, titles bool) *movieParser {
	p := &movieParser{name: name, lineOf: map[string]int{}, ids: ids{}, genres: map[string]string{}}
	if titles {
		p.titles = map[string]string{}
	}
	return p
}

func (p *movieParser) errorf(line int, format string, args ...any) error {
	return &ParseError{File: p.name, Line: line, Err: fmt.Errorf(format, args...)}
}

// add records one movie.
func (p *movieParser) add(line int, id, title string, cats []string) error {
	if first, dup := p.lineOf[id]; dup {
		return p.errorf(line, "duplicate movie id %s (first on line %d)", id, first)
	}
	it := catalog.Item{ID: id}
	if len(cats) > 0 {
		it.Categories = cats
	}
	if err := it.Validate(0); err != nil {
		return p.errorf(line, "movie %s: %v", id, err)
	}
	p.lineOf[id] = line
	p.items = append(p.items, it)
	if p.titles != nil {
		p.titles[id] = title
	}
	return nil
}

// splitGenres splits a '|'-separated genre list; "" and "(no genres listed)"
// give no genres, empty names in a list are an error, repeats are dropped.
func splitGenres[T text](p *movieParser, line int, s T) ([]string, error) {
	if len(s) == 0 || string(s) == noGenres {
		return nil, nil
	}
	n := 1
	for i := 0; i < len(s); i++ {
		if s[i] == '|' {
			n++
		}
	}
	cats := make([]string, 0, n)
	for range n {
		i := 0
		for i < len(s) && s[i] != '|' {
			i++
		}
		g := s[:i]
		if i < len(s) {
			s = s[i+1:]
		}
		if len(g) == 0 {
			return nil, p.errorf(line, "empty genre in genre list")
		}
		name, ok := p.genres[string(g)]
		if !ok {
			if string(g) == noGenres {
				return nil, p.errorf(line, "%q in a list of genres", noGenres)
			}
			name = string(g)
			p.genres[name] = name
		}
		if !slices.Contains(cats, name) {
			cats = append(cats, name)
		}
	}
	return cats, nil
}

func (p *movieParser) readCSV(r io.Reader) error {
	cr, col, err := csvReader(r, p.name, "movieId", "title", "genres")
	if err != nil {
		return err
	}
	return readCSVRecords(cr, p.name, func(line int, rec []string) error {
		id, ok := p.ids.parse(rec[col[0]])
		if !ok {
			return p.errorf(line, "bad movie id %q", rec[col[0]])
		}
		cats, err := splitGenres(p, line, rec[col[2]])
		if err != nil {
			return err
		}
		var title string
		if p.titles != nil {
			title = decodeTitle(rec[col[1]])
		}
		return p.add(line, id, title, cats)
	})
}

var sepDAT = []byte("::")

func (p *movieParser) readDAT(r io.Reader) error {
	return lines(r, p.name, func(line int, b []byte) error {
		i := bytes.Index(b, sepDAT)
		j := bytes.LastIndex(b, sepDAT)
		if i < 0 || j == i {
			return p.errorf(line, "want MovieID::Title::Genres, got %q", b)
		}
		id, ok := parseID(p.ids, b[:i])
		if !ok {
			return p.errorf(line, "bad movie id %q", b[:i])
		}
		cats, err := splitGenres(p, line, b[j+len(sepDAT):])
		if err != nil {
			return err
		}
		var title string
		if p.titles != nil {
			title = decodeTitle(b[i+len(sepDAT) : j])
		}
		return p.add(line, id, title, cats)
	})
}

func (p *movieParser) read100K(r io.Reader) error {
	const nf = 5 + len(genres100K)
	var f [nf][]byte
	return lines(r, p.name, func(line int, b []byte) error {
		if n := bytes.Count(b, []byte{'|'}) + 1; n != nf {
			return p.errorf(line, "%d '|'-separated fields, want %d (id|title|release date|video release date|IMDb URL|19 genre flags)", n, nf)
		}
		for i := range nf - 1 {
			k := bytes.IndexByte(b, '|')
			f[i], b = b[:k], b[k+1:]
		}
		f[nf-1] = b
		id, ok := parseID(p.ids, f[0])
		if !ok {
			return p.errorf(line, "bad movie id %q", f[0])
		}
		var cats []string
		for g, flag := range f[5:] {
			switch string(flag) {
			case "0":
			case "1":
				if g > 0 {
					cats = append(cats, genres100K[g])
				}
			default:
				return p.errorf(line, "genre flag %d (%s) is %q, want 0 or 1", g+1, genres100K[g], flag)
			}
		}
		var title string
		if p.titles != nil {
			title = decodeTitle(f[1])
		}
		return p.add(line, id, title, cats)
	})
}

// ratingParser accumulates ratings from a ratings file.
type ratingParser struct {
	name    string
	ratings []Rating
	ids     ids
}

func newRatingParser(name string) *ratingParser {
	return &ratingParser{name: name, ids: ids{}}
}

func (p *ratingParser) errorf(line int, format string, args ...any) error {
	return &ParseError{File: p.name, Line: line, Err: fmt.Errorf(format, args...)}
}

// addRating parses user, item, rating and timestamp (Unix seconds).
func addRating[T text](p *ratingParser, line int, f *[4]T) error {
	user, ok := parseID(p.ids, f[0])
	if !ok {
		return p.errorf(line, "bad user id %q", f[0])
	}
	item, ok := parseID(p.ids, f[1])
	if !ok {
		return p.errorf(line, "bad movie id %q", f[1])
	}
	v, ok := parseRating(f[2])
	if !ok {
		return p.errorf(line, "bad rating %q", f[2])
	}
	ts, err := parseTS(f[3])
	if err != nil {
		return p.errorf(line, "%v", err)
	}
	p.ratings = append(p.ratings, Rating{UserID: user, ItemID: item, Value: v, TS: ts})
	return nil
}

func (p *ratingParser) readCSV(r io.Reader) error {
	cr, col, err := csvReader(r, p.name, "userId", "movieId", "rating", "timestamp")
	if err != nil {
		return err
	}
	var f [4]string
	return readCSVRecords(cr, p.name, func(line int, rec []string) error {
		for i, c := range col {
			f[i] = rec[c]
		}
		return addRating(p, line, &f)
	})
}

// readSep reads lines of exactly four sep-separated fields; layout describes
// them for errors.
func (p *ratingParser) readSep(r io.Reader, sep, layout string) error {
	s := []byte(sep)
	var f [4][]byte
	return lines(r, p.name, func(line int, b []byte) error {
		rest := b
		for i := range 3 {
			k := bytes.Index(rest, s)
			if k < 0 {
				return p.errorf(line, "%d fields, want 4 (%s): %q", i+1, layout, b)
			}
			f[i], rest = rest[:k], rest[k+len(s):]
		}
		if bytes.Contains(rest, s) {
			return p.errorf(line, "more than 4 fields, want 4 (%s): %q", layout, b)
		}
		f[3] = rest
		return addRating(p, line, &f)
	})
}
