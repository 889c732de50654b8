// Package safetensors reads and writes model weights in the safetensors format
// (huggingface/safetensors), the contract hirez shares with PyTorch: tensors keep
// PyTorch's names and layouts, and a string map (__metadata__) carries the preset.
//
// The format is an 8-byte little-endian header length N, N bytes of JSON
//
//	{"__metadata__": {"k": "v"}, "conv1.weight": {"dtype": "F32", "shape": [64, 3, 9, 9], "data_offsets": [0, 62208]}, ...}
//
// and then the raw little-endian tensor bytes, which the offsets (relative to the end
// of the header) must cover exactly, without gaps or overlaps.
//
// Float tensors are float32 in memory whatever they are stored as: F16 and BF16 are
// widened exactly on load and narrowed with round-to-nearest-even on save. Reading is
// defensive, because weights come from other machines: every malformed header,
// truncated buffer or inconsistent size is an error that names the tensor and what
// was expected, never a panic or a huge allocation.
package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"

	"github.com/hirez-ml/hirez/engine/atomicfile"
)

// DefaultMaxHeader bounds the JSON header (the reference implementation uses 100 MB).
const DefaultMaxHeader = 100 << 20

// metadataKey is the reserved header entry holding the free-form string map.
const metadataKey = "__metadata__"

// ErrFormat is wrapped by every error about a malformed or inconsistent file.
var ErrFormat = errors.New("invalid safetensors data")

// Tensor is one named tensor. Float dtypes keep their values in F32, I64 in I64;
// the other slice is nil. Shape is in PyTorch's order (row-major, NCHW for images).
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	F32   []float32
	I64   []int64
}

// Len is the number of elements the shape holds (1 for a scalar).
func (t *Tensor) Len() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is the content of a safetensors file: tensors in file order plus metadata.
type File struct {
	Metadata map[string]string
	Tensors  []Tensor
}

// Tensor returns the tensor with the given name.
func (f *File) Tensor(name string) (*Tensor, bool) {
	for i := range f.Tensors {
		if f.Tensors[i].Name == name {
			return &f.Tensors[i], true
		}
	}
	return nil, false
}

// Options tune Decode. The zero value is the default.
type Options struct {
	// MaxHeader bounds the JSON header length; 0 means DefaultMaxHeader.
	MaxHeader int
	// CheckFinite rejects float tensors holding NaN or ±Inf.
	CheckFinite bool
}

func (o Options) maxHeader() int {
	if o.MaxHeader > 0 {
		return o.MaxHeader
	}
	return DefaultMaxHeader
}

func formatErr(format string, args ...any) error {
	return fmt.Errorf("safetensors: %w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// entry is a tensor's header record before its bytes are read.
type entry struct {
	name       string
	dtype      DType
	shape      []int
	begin, end int
}

// header is a parsed and validated header.
type header struct {
	meta    map[string]string
	entries []entry // in header order
	dataLen int     // bytes the offsets cover
}

// readHeaderLen checks the 8-byte prefix against the limit and the available size.
func readHeaderLen(prefix []byte, avail int64, o Options) (int, error) {
	n := binary.LittleEndian.Uint64(prefix)
	if n > uint64(o.maxHeader()) {
		return 0, formatErr("header length %d exceeds the limit of %d bytes", n, o.maxHeader())
	}
	if avail >= 0 && n > uint64(avail) {
		return 0, formatErr("header length %d exceeds the %d bytes after the length prefix (truncated file?)", n, avail)
	}
	if n < 2 {
		return 0, formatErr("header length %d is too short for a JSON object", n)
	}
	return int(n), nil
}

// Decode parses a whole safetensors file held in memory.
func Decode(data []byte, o Options) (*File, error) {
	if len(data) < 8 {
		return nil, formatErr("%d bytes is shorter than the 8-byte header length", len(data))
	}
	n, err := readHeaderLen(data[:8], int64(len(data)-8), o)
	if err != nil {
		return nil, err
	}
	h, err := parseHeader(data[8 : 8+n])
	if err != nil {
		return nil, err
	}
	body := data[8+n:]
	if len(body) != h.dataLen {
		return nil, sizeErr(h, len(body))
	}
	return h.decodeBody(body, o)
}

// Read parses a safetensors stream. It never allocates much more than the bytes
// it actually receives, so a header claiming huge tensors cannot exhaust memory.
func Read(r io.Reader, o Options) (*File, error) {
	var prefix [8]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		return nil, formatErr("stream is shorter than the 8-byte header length: %v", err)
	}
	n, err := readHeaderLen(prefix[:], -1, o)
	if err != nil {
		return nil, err
	}
	hb, err := io.ReadAll(io.LimitReader(r, int64(n)))
	if err != nil {
		return nil, fmt.Errorf("safetensors: reading the header: %w", err)
	}
	if len(hb) != n {
		return nil, formatErr("header length %d but only %d bytes follow (truncated file?)", n, len(hb))
	}
	h, err := parseHeader(hb)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(r, int64(h.dataLen)+1))
	if err != nil {
		return nil, fmt.Errorf("safetensors: reading tensor data: %w", err)
	}
	if len(body) != h.dataLen {
		return nil, sizeErr(h, len(body))
	}
	return h.decodeBody(body, o)
}

// ReadFile reads and parses the file at path.
func ReadFile(path string, o Options) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if st.Size() < 8 {
		return nil, fmt.Errorf("safetensors: %s: %w", path, formatErr("%d bytes is shorter than the 8-byte header length", st.Size()))
	}
	// The prefix is checked against the file size before the header is allocated.
	var prefix [8]byte
	if _, err := io.ReadFull(f, prefix[:]); err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	if _, err := readHeaderLen(prefix[:], st.Size()-8, o); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	out, err := Read(f, o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

func sizeErr(h *header, got int) error {
	if got < h.dataLen {
		return formatErr("the header's tensors need %d data bytes but the file has %d (truncated file?)", h.dataLen, got)
	}
	return formatErr("the header's tensors cover %d data bytes but the file has %d or more (trailing bytes)", h.dataLen, got)
}

// parseHeader decodes the JSON header token by token, so duplicate names are seen
// (encoding/json into a map would silently keep the last one).
func parseHeader(b []byte) (*header, error) {
	// The format allows trailing spaces as padding to align the data.
	b = bytes.TrimRight(b, " ")
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, formatErr("header is not a JSON object")
	}
	h := &header{}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, formatErr("header JSON: %v", err)
		}
		name, ok := t.(string)
		if !ok {
			return nil, formatErr("header JSON: key %v is not a string", t)
		}
		if seen[name] {
			return nil, formatErr("duplicate entry %q in the header", name)
		}
		seen[name] = true
		if name == metadataKey {
			if h.meta, err = parseMetadata(dec); err != nil {
				return nil, err
			}
			continue
		}
		e, err := parseEntry(dec, name)
		if err != nil {
			return nil, err
		}
		h.entries = append(h.entries, e)
	}
	if _, err := dec.Token(); err != nil {
		return nil, formatErr("header JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, formatErr("header JSON: data after the object")
	}
	if err := h.checkOffsets(); err != nil {
		return nil, err
	}
	return h, nil
}

func parseMetadata(dec *json.Decoder) (map[string]string, error) {
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, formatErr("%s is not a JSON object of strings", metadataKey)
	}
	m := map[string]string{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, formatErr("%s: %v", metadataKey, err)
		}
		k, _ := kt.(string)
		vt, err := dec.Token()
		if err != nil {
			return nil, formatErr("%s: %v", metadataKey, err)
		}
		v, ok := vt.(string)
		if !ok {
			return nil, formatErr("%s[%q] is not a string", metadataKey, k)
		}
		if _, dup := m[k]; dup {
			return nil, formatErr("%s: duplicate key %q", metadataKey, k)
		}
		m[k] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, formatErr("%s: %v", metadataKey, err)
	}
	return m, nil
}

// maxElements keeps element counts and byte sizes far from int overflow.
const maxElements = 1 << 50

func parseEntry(dec *json.Decoder, name string) (entry, error) {
	var raw struct {
		DType       *string       `json:"dtype"`
		Shape       []json.Number `json:"shape"`
		DataOffsets []json.Number `json:"data_offsets"`
	}
	if err := dec.Decode(&raw); err != nil {
		return entry{}, formatErr("tensor %q: header record: %v", name, err)
	}
	e := entry{name: name}
	if name == "" {
		return e, formatErr("a tensor has an empty name")
	}
	if raw.DType == nil {
		return e, formatErr("tensor %q: no dtype", name)
	}
	d, err := parseDType(*raw.DType)
	if err != nil {
		return e, formatErr("tensor %q: %v", name, err)
	}
	e.dtype = d
	if raw.Shape == nil {
		return e, formatErr("tensor %q: no shape", name)
	}
	count := 1
	for _, s := range raw.Shape {
		v, err := strconv.ParseInt(s.String(), 10, 64)
		if err != nil || v < 0 || v > maxElements {
			return e, formatErr("tensor %q: shape entry %s is not a non-negative integer", name, s)
		}
		e.shape = append(e.shape, int(v))
		if v != 0 && count > maxElements/int(v) {
			return e, formatErr("tensor %q: shape %v has too many elements", name, e.shape)
		}
		count *= int(v)
	}
	if len(raw.DataOffsets) != 2 {
		return e, formatErr("tensor %q: data_offsets has %d entries, want [begin, end]", name, len(raw.DataOffsets))
	}
	var off [2]int
	for i, s := range raw.DataOffsets {
		v, err := strconv.ParseInt(s.String(), 10, 64)
		if err != nil || v < 0 || v > maxElements {
			return e, formatErr("tensor %q: data offset %s is not a non-negative integer", name, s)
		}
		off[i] = int(v)
	}
	e.begin, e.end = off[0], off[1]
	if e.end < e.begin {
		return e, formatErr("tensor %q: data_offsets [%d, %d] end before they begin", name, e.begin, e.end)
	}
	if want := count * d.Size(); e.end-e.begin != want {
		return e, formatErr("tensor %q: shape %v × %s needs %d bytes, data_offsets [%d, %d] give %d",
			name, e.shape, d, want, e.begin, e.end, e.end-e.begin)
	}
	return e, nil
}

// checkOffsets requires the byte ranges to tile [0, dataLen) exactly: no overlap
// (two tensors sharing bytes) and no gap (room for a hidden payload).
func (h *header) checkOffsets() error {
	idx := make([]int, len(h.entries))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		ea, eb := h.entries[idx[a]], h.entries[idx[b]]
		if ea.begin != eb.begin {
			return ea.begin < eb.begin
		}
		return ea.end < eb.end
	})
	pos, prev := 0, ""
	for _, i := range idx {
		e := h.entries[i]
		switch {
		case e.begin < pos:
			return formatErr("tensor %q: data_offsets [%d, %d] overlap tensor %q, which ends at %d", e.name, e.begin, e.end, prev, pos)
		case e.begin > pos:
			return formatErr("tensor %q: data_offsets [%d, %d] leave a gap after byte %d", e.name, e.begin, e.end, pos)
		}
		pos, prev = e.end, e.name
	}
	h.dataLen = pos
	return nil
}

func (h *header) decodeBody(body []byte, o Options) (*File, error) {
	f := &File{Metadata: h.meta, Tensors: make([]Tensor, len(h.entries))}
	if f.Metadata == nil {
		f.Metadata = map[string]string{}
	}
	for i, e := range h.entries {
		t := Tensor{Name: e.name, DType: e.dtype, Shape: e.shape}
		if t.Shape == nil {
			t.Shape = []int{}
		}
		raw := body[e.begin:e.end]
		n := len(raw) / e.dtype.Size()
		switch e.dtype {
		case I64:
			t.I64 = make([]int64, n)
			for j := range t.I64 {
				t.I64[j] = int64(binary.LittleEndian.Uint64(raw[8*j:]))
			}
		default:
			t.F32 = make([]float32, n)
			decodeFloats(e.dtype, raw, t.F32)
			if o.CheckFinite {
				for j, v := range t.F32 {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						return nil, formatErr("tensor %q: element %d is %v, want a finite value", e.name, j, v)
					}
				}
			}
		}
		f.Tensors[i] = t
	}
	return f, nil
}

func decodeFloats(d DType, raw []byte, out []float32) {
	switch d {
	case F32:
		for j := range out {
			out[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
		}
	case F16:
		for j := range out {
			out[j] = F16ToFloat32(binary.LittleEndian.Uint16(raw[2*j:]))
		}
	case BF16:
		for j := range out {
			out[j] = BF16ToFloat32(binary.LittleEndian.Uint16(raw[2*j:]))
		}
	case F64:
		for j := range out {
			out[j] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*j:])))
		}
	}
}

// headerRecord is one tensor's JSON record, in the format's field order.
type headerRecord struct {
	DType       DType  `json:"dtype"`
	Shape       []int  `json:"shape"`
	DataOffsets [2]int `json:"data_offsets"`
}

// Encode writes f in the safetensors format: tensors in the order given, the data
// aligned to 8 bytes (the header is padded with spaces as the reference writer does).
func Encode(w io.Writer, f *File) error {
	var hdr bytes.Buffer
	hdr.WriteByte('{')
	writeKey := func(k string) {
		if hdr.Len() > 1 {
			hdr.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		hdr.Write(kb)
		hdr.WriteByte(':')
	}
	if len(f.Metadata) > 0 {
		writeKey(metadataKey)
		mb, err := json.Marshal(f.Metadata) // sorted keys: stable bytes
		if err != nil {
			return fmt.Errorf("safetensors: metadata: %w", err)
		}
		hdr.Write(mb)
	}
	seen := map[string]bool{}
	pos := 0
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if err := checkTensor(t); err != nil {
			return err
		}
		if seen[t.Name] {
			return fmt.Errorf("safetensors: duplicate tensor name %q", t.Name)
		}
		seen[t.Name] = true
		n := t.Len() * t.DType.Size()
		rb, err := json.Marshal(headerRecord{DType: t.DType, Shape: t.Shape, DataOffsets: [2]int{pos, pos + n}})
		if err != nil {
			return fmt.Errorf("safetensors: tensor %q: %w", t.Name, err)
		}
		writeKey(t.Name)
		hdr.Write(rb)
		pos += n
	}
	hdr.WriteByte('}')
	for (8+hdr.Len())%8 != 0 {
		hdr.WriteByte(' ')
	}
	var prefix [8]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(hdr.Len()))
	if _, err := w.Write(prefix[:]); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	var buf []byte
	for i := range f.Tensors {
		buf = appendData(buf[:0], &f.Tensors[i])
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("safetensors: %w", err)
		}
	}
	return nil
}

func checkTensor(t *Tensor) error {
	if t.Name == "" || t.Name == metadataKey {
		return fmt.Errorf("safetensors: invalid tensor name %q", t.Name)
	}
	if t.DType.Size() == 0 {
		return fmt.Errorf("safetensors: tensor %q: unsupported dtype %q", t.Name, t.DType)
	}
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("safetensors: tensor %q: negative dimension in shape %v", t.Name, t.Shape)
		}
	}
	have, kind := len(t.F32), "F32"
	if t.DType == I64 {
		have, kind = len(t.I64), "I64"
	}
	if have != t.Len() {
		return fmt.Errorf("safetensors: tensor %q: shape %v holds %d values but %s has %d", t.Name, t.Shape, t.Len(), kind, have)
	}
	return nil
}

func appendData(buf []byte, t *Tensor) []byte {
	switch t.DType {
	case F32:
		for _, v := range t.F32 {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
	case F16:
		for _, v := range t.F32 {
			buf = binary.LittleEndian.AppendUint16(buf, Float32ToF16(v))
		}
	case BF16:
		for _, v := range t.F32 {
			buf = binary.LittleEndian.AppendUint16(buf, Float32ToBF16(v))
		}
	case F64:
		for _, v := range t.F32 {
			buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(float64(v)))
		}
	case I64:
		for _, v := range t.I64 {
			buf = binary.LittleEndian.AppendUint64(buf, uint64(v))
		}
	}
	return buf
}

// WriteFile writes f to path atomically (engine/atomicfile): a crash leaves
// either the old file or the new one, never a torn one.
func WriteFile(path string, f *File) error {
	if err := atomicfile.Write(path, func(w *bufio.Writer) error { return Encode(w, f) }); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}
