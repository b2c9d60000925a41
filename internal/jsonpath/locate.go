package jsonpath

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// At returns the path, in the service's style ("items[0].embedding[3]"),
// of the innermost value of the JSON document data that contains the byte
// at offset; "" for the document itself or when offset is outside any
// value. A byte inside an object key belongs to that key's value. It lets
// an error that only knows a byte offset (an invalid UTF-8 byte, an
// *json.UnmarshalTypeError on Go releases that leave indexes out of its
// Field) name the field. data is assumed to be syntactically valid up to
// offset; past the first syntax error At gives up and returns what it has.
func At(data []byte, offset int64) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		array bool
		index int    // arrays: index of the next element
		key   string // objects: key of the current value
		inKey bool   // objects: the next string token is a key
		path  string
	}
	var stack []frame
	// child returns the path of the next value of the innermost container.
	child := func() string {
		if len(stack) == 0 {
			return ""
		}
		f := &stack[len(stack)-1]
		if f.array {
			return f.path + "[" + strconv.Itoa(f.index) + "]"
		}
		if f.path == "" {
			return f.key
		}
		return f.path + "." + f.key
	}
	// done records that the current value of the innermost container ended.
	done := func() {
		if len(stack) == 0 {
			return
		}
		f := &stack[len(stack)-1]
		if f.array {
			f.index++
		} else {
			f.inKey = true
		}
	}
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		end := dec.InputOffset()
		if len(stack) > 0 && !stack[len(stack)-1].array && stack[len(stack)-1].inKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				if offset < end {
					return child()
				}
				done()
				continue
			}
			f := &stack[len(stack)-1]
			f.key, _ = tok.(string)
			f.inKey = false
			if offset >= start && offset < end {
				return child()
			}
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			path := child()
			if offset >= start && offset < end {
				return path
			}
			stack = append(stack, frame{array: tok == json.Delim('['), inKey: tok == json.Delim('{'), path: path})
		case json.Delim(']'):
			path := stack[len(stack)-1].path
			stack = stack[:len(stack)-1]
			if offset < end {
				return path
			}
			done()
		default:
			if offset >= start && offset < end {
				return child()
			}
			done()
		}
		if len(stack) == 0 && offset < end {
			return ""
		}
	}
}

// Unknown returns the path, in the service's style, of an object key
// named name in the JSON document data that matches no field of the Go type
// t at its place, the way encoding/json's DisallowUnknownFields judges it
// (case-insensitively); "" when there is none. encoding/json's "unknown
// field" error names the key but not where it is.
func Unknown(data []byte, t reflect.Type, name string) string {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return ""
	}
	path, _ := unknown(v, t, "", name)
	return path
}

func unknown(v any, t reflect.Type, path, name string) (string, bool) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "", false
	}
	join := func(key string) string {
		if path == "" {
			return key
		}
		return path + "." + key
	}
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			var ft reflect.Type
			switch t.Kind() {
			case reflect.Map:
				ft = t.Elem()
			case reflect.Struct:
				f, ok := field(t, k)
				if !ok {
					if k == name {
						return join(k), true
					}
					continue
				}
				ft = f
			default:
				continue
			}
			if p, ok := unknown(v[k], ft, join(k), name); ok {
				return p, true
			}
		}
	case []any:
		if t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
			return "", false
		}
		for i, e := range v {
			if p, ok := unknown(e, t.Elem(), path+"["+strconv.Itoa(i)+"]", name); ok {
				return p, true
			}
		}
	}
	return "", false
}

// field finds the struct field encoding/json would decode key into.
func field(t reflect.Type, key string) (reflect.Type, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "-" {
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		if strings.EqualFold(tag, key) {
			return f.Type, true
		}
	}
	return nil, false
}
