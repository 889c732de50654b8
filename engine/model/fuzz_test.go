package model

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend/ref"
)

// fuzzConfigs are tiny configs of each role that cover every op and option,
// so seeds built from them are a few kB (a preset's file is up to MBs, which
// the fuzzer mutates slowly).
var fuzzConfigs = []string{
	`{"preset":"g","role":"generator","side":8,"latent":4,"classes":2,"channels":3,"range":"signed","init":"dcgan","layers":[` +
		`{"op":"dense","name":"d"},{"op":"reshape","name":"r","out":2},{"op":"batchnorm","name":"bn"},{"op":"relu","name":"a"},` +
		`{"op":"upsample2x","name":"u"},{"op":"conv","name":"c","out":3,"kernel":3,"pad":1,"no_bias":true},{"op":"tanh","name":"t"}]}`,
	`{"preset":"d","role":"discriminator","side":8,"channels":3,"range":"signed","init":"pytorch","layers":[` +
		`{"op":"conv","name":"c","out":2,"kernel":4,"stride":2,"pad":1,"spectral_norm":true},{"op":"leaky_relu","name":"a","alpha":0.2},` +
		`{"op":"maxpool2","name":"p"},{"op":"flatten","name":"f"},{"op":"dense","name":"d","out":1},{"op":"sigmoid","name":"s"}]}`,
	`{"preset":"u","role":"upscaler","side":4,"channels":3,"scale":2,"range":"unit","init":"pytorch","residual":true,"border":"symmetric","layers":[` +
		`{"op":"conv","name":"c","out":12,"kernel":3,"pad":1,"zero_init":true},{"op":"pixel_shuffle","name":"p","factor":2}]}`,
	`{"preset":"b","role":"upscaler","side":4,"channels":3,"scale":2,"range":"unit","init":"pytorch","input":"bicubic","layers":[` +
		`{"op":"conv","name":"c","out":3,"kernel":1}]}`,
	`{"preset":"e","role":"encoder","side":4,"channels":3,"features":2,"range":"unit","init":"pytorch","layers":[` +
		`{"op":"flatten","name":"f"},{"op":"dense","name":"d","out":2}]}`,
}

// FuzzParseConfig feeds ParseConfig (the "config" metadata of every weights
// file a server opens) arbitrary JSON: an accepted config must plan, and
// survive JSON → ParseConfig unchanged.
func FuzzParseConfig(f *testing.F) {
	for _, p := range Presets() {
		for _, side := range p.Sides {
			c, err := p.Config(side)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(c.JSON())
		}
	}
	for _, s := range fuzzConfigs {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConfig(s)
		if err != nil {
			return
		}
		steps, err := c.Plan()
		if err != nil {
			t.Fatalf("accepted config does not plan: %v", err)
		}
		if params, buffers, _ := Counts(steps); params < 0 || buffers < 0 {
			t.Fatalf("accepted config counts %d parameters and %d buffers", params, buffers)
		}
		back, err := ParseConfig(c.JSON())
		if err != nil {
			t.Fatalf("ParseConfig of its own JSON: %v", err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("JSON round trip changed the config:\n%+v\n%+v", c, back)
		}
	})
}

// FuzzOpen feeds Open, the path every served model and --init-from file takes,
// arbitrary file contents (seeds: weights files of fuzzConfigs): it must build the network or return
// an error, never panic, and must not build a network a file's tensors cannot
// fill.
func FuzzOpen(f *testing.F) {
	be := ref.New()
	dir := f.TempDir()
	for i, s := range fuzzConfigs {
		c, err := ParseConfig(s)
		if err != nil {
			f.Fatal(err)
		}
		n, err := BuildConfig(c, be, 1)
		if err != nil {
			f.Fatal(err)
		}
		path := filepath.Join(dir, fmt.Sprintf("%d.safetensors", i))
		err = n.Save(path, map[string]string{"name": "fuzz"})
		n.Free()
		if err != nil {
			f.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "w.safetensors")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		n, meta, err := Open(path, be)
		if err != nil {
			return
		}
		defer n.Free()
		if meta[MetaConfig] == "" {
			t.Fatal("opened a file without config metadata")
		}
		params, buffers, _ := n.Counts()
		if int64(len(data)) < 2*(params+buffers) { // F16 and BF16 take 2 bytes a value
			t.Fatalf("a %d-byte file opened as a network of %d parameters and buffers", len(data), params+buffers)
		}
	})
}
