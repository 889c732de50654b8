package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func sample() *File {
	return &File{
		Metadata: map[string]string{"preset": "srcnn-study", "config": `{"a":1}`},
		Tensors: []Tensor{
			{Name: "conv1.weight", DType: F32, Shape: []int{2, 3, 1, 1}, F32: []float32{1, -2, 3.5, 0, 1e-3, -7}},
			{Name: "conv1.bias", DType: F16, Shape: []int{2}, F32: []float32{0.5, -0.25}},
			{Name: "bn1.weight", DType: BF16, Shape: []int{3}, F32: []float32{1, 2, -4}},
			{Name: "d64", DType: F64, Shape: []int{2}, F32: []float32{3, 4}},
			{Name: "bn1.num_batches_tracked", DType: I64, Shape: []int{}, I64: []int64{1 << 40}},
			{Name: "empty", DType: F32, Shape: []int{0, 4}, F32: []float32{}},
		},
	}
}

func encode(t testing.TB, f *File) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Encode(&b, f); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestRoundTrip(t *testing.T) {
	in := sample()
	data := encode(t, in)
	n := binary.LittleEndian.Uint64(data)
	if (8+n)%8 != 0 {
		t.Errorf("data starts at %d, not 8-byte aligned", 8+n)
	}
	for name, read := range map[string]func() (*File, error){
		"Decode": func() (*File, error) { return Decode(data, Options{}) },
		"Read":   func() (*File, error) { return Read(bytes.NewReader(data), Options{}) },
	} {
		out, err := read()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(out, in) {
			t.Errorf("%s: got %+v\nwant %+v", name, out, in)
		}
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "w.safetensors")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, sample()); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, sample()) {
		t.Errorf("read back %+v", got)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the file (temp file left behind?)", len(ents))
	}
	// A failed encode leaves the old file alone and no temp file.
	bad := &File{Tensors: []Tensor{{Name: "x", DType: F32, Shape: []int{3}, F32: []float32{1}}}}
	if err := WriteFile(path, bad); err == nil {
		t.Fatal("WriteFile accepted a tensor with too few values")
	}
	if again, err := ReadFile(path, Options{}); err != nil || !reflect.DeepEqual(again, sample()) {
		t.Errorf("old file damaged by a failed write: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("failed write left %d entries", len(ents))
	}
}

// build assembles a file from a raw header (no validation) and data bytes.
func build(header string, data []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	out = append(out, header...)
	return append(out, data...)
}

func TestRejects(t *testing.T) {
	eight := make([]byte, 8)
	good := encode(t, sample())
	cases := []struct {
		name string
		data []byte
		opts Options
		want string // a fragment the error must contain
	}{
		{"empty", nil, Options{}, "shorter than the 8-byte"},
		{"truncated data", good[:len(good)-3], Options{}, "truncated"},
		{"trailing bytes", append(append([]byte{}, good...), 0), Options{}, "trailing"},
		{"header beyond file", binary.LittleEndian.AppendUint64(nil, 1000), Options{}, "exceeds the 0 bytes"},
		{"header too long", build(strings.Repeat(" ", 64), nil), Options{MaxHeader: 32}, "exceeds the limit"},
		{"header not json", build("nope", nil), Options{}, "not a JSON object"},
		{"header json array", build("[]", nil), Options{}, "not a JSON object"},
		{"trailing json", build(`{}{}`, nil), Options{}, "after the object"},
		{"unknown dtype", build(`{"x":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}`, eight), Options{}, `tensor "x": unknown dtype "F33"`},
		{"unsupported dtype", build(`{"x":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}`, eight), Options{}, `tensor "x": dtype I32 is not supported`},
		{"missing dtype", build(`{"x":{"shape":[2],"data_offsets":[0,8]}}`, eight), Options{}, `tensor "x": no dtype`},
		{"missing shape", build(`{"x":{"dtype":"F32","data_offsets":[0,8]}}`, eight), Options{}, `tensor "x": no shape`},
		{"negative shape", build(`{"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, eight), Options{}, `shape entry -2`},
		{"fractional shape", build(`{"x":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}`, eight), Options{}, `shape entry 2.5`},
		{"huge shape", build(`{"x":{"dtype":"F32","shape":[1125899906842624,1125899906842624],"data_offsets":[0,8]}}`, eight), Options{}, "too many elements"},
		{"size mismatch", build(`{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, eight), Options{}, `tensor "x": shape [3] × F32 needs 12 bytes, data_offsets [0, 8] give 8`},
		{"bf16 size mismatch", build(`{"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,8]}}`, eight), Options{}, `needs 4 bytes`},
		{"reversed offsets", build(`{"x":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, eight), Options{}, "end before they begin"},
		{"three offsets", build(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}`, eight), Options{}, "3 entries"},
		{"out of range", build(`{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, eight), Options{}, "need 16 data bytes but the file has 8"},
		{"overlap", build(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), Options{}, `overlap tensor "x"`},
		{"gap", build(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), Options{}, "gap"},
		{"duplicate name", build(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), Options{}, `duplicate entry "x"`},
		{"empty name", build(`{"":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, eight), Options{}, "empty name"},
		{"metadata not strings", build(`{"__metadata__":{"a":1}}`, nil), Options{}, `__metadata__["a"] is not a string`},
		{"metadata duplicate", build(`{"__metadata__":{"a":"1","a":"2"}}`, nil), Options{}, `duplicate key "a"`},
		{"metadata twice", build(`{"__metadata__":{},"__metadata__":{}}`, nil), Options{}, `duplicate entry "__metadata__"`},
		{"unknown field", build(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":{"a":1}}}`, eight), Options{}, ""},
		{"nan", build(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, binary.LittleEndian.AppendUint32(make([]byte, 4), math.Float32bits(float32(math.NaN())))), Options{CheckFinite: true}, `tensor "x": element 1 is NaN`},
		{"inf f16", build(`{"x":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}`, []byte{0, 0x7c}), Options{CheckFinite: true}, `element 0 is +Inf`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err1 := Decode(c.data, c.opts)
			_, err2 := Read(bytes.NewReader(c.data), c.opts)
			if c.want == "" { // accepted: unknown fields are ignored, as by the reference reader
				if err1 != nil || err2 != nil {
					t.Fatalf("rejected: %v / %v", err1, err2)
				}
				return
			}
			for i, err := range []error{err1, err2} {
				if err == nil {
					t.Fatalf("reader %d accepted it", i)
				}
				if !errors.Is(err, ErrFormat) {
					t.Errorf("reader %d: %v does not wrap ErrFormat", i, err)
				}
				if c.name == "header beyond file" && i == 1 {
					continue // a stream does not know the file size; it reports the short read
				}
				if !strings.Contains(err.Error(), c.want) {
					t.Errorf("reader %d: error %q does not mention %q", i, err, c.want)
				}
			}
		})
	}
}

func TestReadFileChecksHeaderAgainstSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.safetensors")
	if err := os.WriteFile(path, binary.LittleEndian.AppendUint64(nil, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(path, Options{})
	if err == nil || !strings.Contains(err.Error(), "exceeds the 0 bytes") || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v", err)
	}
}

func TestEncodeRejects(t *testing.T) {
	cases := map[string]Tensor{
		"dtype":     {Name: "x", DType: "I32", Shape: []int{1}, F32: []float32{1}},
		"name":      {Name: "", DType: F32, Shape: []int{1}, F32: []float32{1}},
		"reserved":  {Name: "__metadata__", DType: F32, Shape: []int{1}, F32: []float32{1}},
		"count":     {Name: "x", DType: F32, Shape: []int{2}, F32: []float32{1}},
		"i64 count": {Name: "x", DType: I64, Shape: []int{2}, F32: []float32{1, 2}},
		"negative":  {Name: "x", DType: F32, Shape: []int{-1}, F32: []float32{}},
	}
	for name, tt := range cases {
		if err := Encode(&bytes.Buffer{}, &File{Tensors: []Tensor{tt}}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	dup := &File{Tensors: []Tensor{sample().Tensors[0], sample().Tensors[0]}}
	if err := Encode(&bytes.Buffer{}, dup); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate: %v", err)
	}
}

// The fixture was written by PyTorch (scripts/fixtures/torch_safetensors.py), which
// did the F16/BF16 narrowing itself: ours must agree bit for bit.
func TestReadsTorchFile(t *testing.T) {
	f, err := ReadFile("testdata/torch_dtypes.safetensors", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["writer"] != "torch_safetensors.py" {
		t.Errorf("metadata %v", f.Metadata)
	}
	for _, base := range []string{"base", "special"} {
		ref, ok := f.Tensor(base + ".f32")
		if !ok {
			t.Fatalf("no %s.f32", base)
		}
		for _, c := range []struct {
			suffix string
			conv   func(float32) float32
		}{
			{".f16", func(v float32) float32 { return F16ToFloat32(Float32ToF16(v)) }},
			{".bf16", func(v float32) float32 { return BF16ToFloat32(Float32ToBF16(v)) }},
			{".f64", func(v float32) float32 { return v }},
		} {
			if c.suffix == ".f64" && base == "special" {
				continue
			}
			got, ok := f.Tensor(base + c.suffix)
			if !ok {
				t.Fatalf("no %s%s", base, c.suffix)
			}
			if !reflect.DeepEqual(got.Shape, ref.Shape) {
				t.Errorf("%s shape %v, want %v", got.Name, got.Shape, ref.Shape)
			}
			for i, v := range ref.F32 {
				if want := c.conv(v); math.Float32bits(got.F32[i]) != math.Float32bits(want) {
					t.Errorf("%s[%d]: torch stored %g, we convert %g to %g", got.Name, i, got.F32[i], v, want)
				}
			}
		}
	}
	if c, _ := f.Tensor("counter"); c == nil || c.DType != I64 || len(c.Shape) != 0 || c.I64[0] != 123456789012 {
		t.Errorf("counter = %+v", c)
	}
	if e, _ := f.Tensor("empty"); e == nil || !reflect.DeepEqual(e.Shape, []int{0, 3}) || len(e.F32) != 0 {
		t.Errorf("empty = %+v", e)
	}
}

// torchPython returns Debian's python with torch, or skips.
func torchPython(t *testing.T) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if testing.Short() {
		t.Skip("short mode")
	}
	if err := exec.Command(py, "-c", "import torch").Run(); err != nil {
		t.Skipf("no PyTorch at %s: %v", py, err)
	}
	return py
}

// Our files load in PyTorch with the values we wrote.
func TestTorchReadsOurFile(t *testing.T) {
	py := torchPython(t)
	path := filepath.Join(t.TempDir(), "ours.safetensors")
	if err := WriteFile(path, sample()); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "../../scripts/fixtures/torch_safetensors.py", "describe", path).Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var got struct {
		Metadata map[string]string
		Tensors  map[string]struct {
			DType string
			Shape []int
			Sum   float64
			First []float64
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if !reflect.DeepEqual(got.Metadata, sample().Metadata) {
		t.Errorf("metadata %v", got.Metadata)
	}
	for _, tt := range sample().Tensors {
		g, ok := got.Tensors[tt.Name]
		if !ok {
			t.Errorf("torch did not see %q", tt.Name)
			continue
		}
		if g.DType != string(tt.DType) || !reflect.DeepEqual(g.Shape, tt.Shape) {
			t.Errorf("%s: torch sees %s %v, want %s %v", tt.Name, g.DType, g.Shape, tt.DType, tt.Shape)
		}
		var sum float64
		for _, v := range tt.F32 {
			sum += float64(v)
		}
		for _, v := range tt.I64 {
			sum += float64(v)
		}
		if math.Abs(g.Sum-sum) > 1e-3*math.Max(1, math.Abs(sum)) {
			t.Errorf("%s: torch sum %g, want %g", tt.Name, g.Sum, sum)
		}
	}
}

func FuzzRead(f *testing.F) {
	f.Add(encode(f, sample()))
	f.Add(build(`{"x":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add(build(`{"__metadata__":{"a":"b"}}`, nil))
	if b, err := os.ReadFile("testdata/torch_dtypes.safetensors"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, errA := Decode(data, Options{MaxHeader: 1 << 16})
		b, errB := Read(bytes.NewReader(data), Options{MaxHeader: 1 << 16})
		if (errA == nil) != (errB == nil) {
			t.Fatalf("Decode and Read disagree: %v / %v", errA, errB)
		}
		if errA != nil {
			return
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatal("Decode and Read disagree on the content")
		}
		// Whatever we accept, we write back in a form we accept with the same content
		// (floats compared as bits: NaN payloads survive F32).
		var buf bytes.Buffer
		if err := Encode(&buf, a); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		c, err := Decode(buf.Bytes(), Options{})
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if len(c.Tensors) != len(a.Tensors) || len(c.Metadata) != len(a.Metadata) {
			t.Fatal("re-decode changed the tensor or metadata count")
		}
		for i := range a.Tensors {
			x, y := a.Tensors[i], c.Tensors[i]
			if x.Name != y.Name || x.DType != y.DType || !reflect.DeepEqual(x.Shape, y.Shape) || !reflect.DeepEqual(x.I64, y.I64) {
				t.Fatalf("tensor %d changed: %+v → %+v", i, x, y)
			}
			for j := range x.F32 {
				if x.DType != F64 && math.Float32bits(x.F32[j]) != math.Float32bits(y.F32[j]) && !math.IsNaN(float64(x.F32[j])) {
					t.Fatalf("%s[%d]: %g → %g", x.Name, j, x.F32[j], y.F32[j])
				}
			}
		}
	})
}
