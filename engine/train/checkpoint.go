package train

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/hirez-ml/hirez/engine/dataset"
	"github.com/hirez-ml/hirez/engine/layer"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/optim"
	"github.com/hirez-ml/hirez/engine/safetensors"
)

// Checkpoint layout: one safetensors file. Network tensors keep their PyTorch names
// behind a prefix per network ("g.", "d.", "ema.", "net."), optimizer moments are
// named by the optimizer ("opt_g.m.conv1.weight", …), and the run's scalars (step,
// loader position, RNG state, elapsed time) and the job's signature live in the
// metadata, which safetensors keeps as strings.
const (
	metaFormat    = "hirez.checkpoint"
	formatVersion = "1"
	metaKind      = "hirez.kind"
	metaSignature = "hirez.signature"
	metaStep      = "hirez.step"
	metaImages    = "hirez.images"
	metaElapsed   = "hirez.elapsed_ns"
	metaLoader    = "hirez.loader"
	metaRNG       = "hirez.rng"
)

type ckptState struct {
	step    int
	images  int64
	elapsed time.Duration
	loader  dataset.State
	rng     []byte
}

func mustMarshal(p *rand.PCG) []byte {
	b, err := p.MarshalBinary()
	if err != nil {
		panic(err) // PCG.MarshalBinary never fails
	}
	return b
}

func writeCheckpoint(path string, j job, st ckptState) error {
	lj, err := json.Marshal(st.loader)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	f := &safetensors.File{Metadata: map[string]string{
		metaFormat:    formatVersion,
		metaKind:      j.kind(),
		metaSignature: j.signature(),
		metaStep:      strconv.Itoa(st.step),
		metaImages:    strconv.FormatInt(st.images, 10),
		metaElapsed:   strconv.FormatInt(int64(st.elapsed), 10),
		metaLoader:    string(lj),
		metaRNG:       hex.EncodeToString(st.rng),
	}}
	for _, p := range j.state() {
		if err := p.save(f); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	if err := safetensors.WriteFile(path, f); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// readCheckpoint loads path into j; ok is false when there is no checkpoint yet.
func readCheckpoint(path string, j job) (st ckptState, ok bool, err error) {
	f, err := safetensors.ReadFile(path, safetensors.Options{CheckFinite: true})
	if errors.Is(err, fs.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("resume: %w", err)
	}
	m := f.Metadata
	if m[metaFormat] != formatVersion {
		return st, false, fmt.Errorf("resume: %s is not a hirez checkpoint (format %q)", path, m[metaFormat])
	}
	if m[metaKind] != j.kind() || m[metaSignature] != j.signature() {
		return st, false, fmt.Errorf("resume: %s was made by a different run (%s %s); now %s %s — use a new output folder or drop resume",
			path, m[metaKind], m[metaSignature], j.kind(), j.signature())
	}
	var errs []error
	num := func(k string) int64 {
		v, err := strconv.ParseInt(m[k], 10, 64)
		if err != nil || v < 0 {
			errs = append(errs, fmt.Errorf("metadata %s = %q", k, m[k]))
		}
		return v
	}
	st.step, st.images, st.elapsed = int(num(metaStep)), num(metaImages), time.Duration(num(metaElapsed))
	if err := json.Unmarshal([]byte(m[metaLoader]), &st.loader); err != nil {
		errs = append(errs, fmt.Errorf("metadata %s: %w", metaLoader, err))
	}
	if st.rng, err = hex.DecodeString(m[metaRNG]); err != nil {
		errs = append(errs, fmt.Errorf("metadata %s: %w", metaRNG, err))
	}
	if err := errors.Join(errs...); err != nil {
		return st, false, fmt.Errorf("resume %s: %w", path, err)
	}
	for _, p := range j.state() {
		if err := p.load(f); err != nil {
			return st, false, fmt.Errorf("resume %s: %w", path, err)
		}
	}
	return st, true, nil
}

// ckptPart is one piece of the state a job checkpoints besides the runner's own
// scalars (step, loader position, RNG, elapsed time): how it goes into a
// checkpoint file and how it comes back out. A job lists its parts (job.state)
// in the order they are written; loading finds every tensor by name.
type ckptPart struct {
	save func(f *safetensors.File) error
	load func(f *safetensors.File) error
}

// netPart is a network's tensors (BatchNorm counters and spectral norm's u
// included) under prefix: "g.", "d.", "net.".
func netPart(prefix string, n *model.Network) ckptPart {
	return ckptPart{
		save: func(f *safetensors.File) error { return addNet(f, prefix, n) },
		load: func(f *safetensors.File) error { return loadNet(f, prefix, n) },
	}
}

// adamPart is an optimizer's moments and step count, named by the optimizer
// itself ("opt_g.m.…", "opt_d.v.…", "opt.step").
func adamPart(o *optim.Adam) ckptPart {
	return ckptPart{
		save: func(f *safetensors.File) error {
			st, err := o.State()
			if err != nil {
				return err
			}
			return addParams(f, "", st)
		},
		load: func(f *safetensors.File) error { return o.Load(getter(f, "")) },
	}
}

// paramsPart is a set of parameter values under prefix: an EMA's shadow
// ("ema."), a head outside the published network ("").
func paramsPart(prefix string, ps []*layer.Param) ckptPart {
	return ckptPart{
		save: func(f *safetensors.File) error { return addParams(f, prefix, ps) },
		load: func(f *safetensors.File) error { return loadParams(f, prefix, ps) },
	}
}

// addNet appends a network's tensors (BatchNorm counters included) under prefix.
func addNet(f *safetensors.File, prefix string, n *model.Network) error {
	nf, err := n.File(nil)
	if err != nil {
		return err
	}
	for _, t := range nf.Tensors {
		t.Name = prefix + t.Name
		f.Tensors = append(f.Tensors, t)
	}
	return nil
}

// loadNet loads the tensors under prefix into n.
func loadNet(f *safetensors.File, prefix string, n *model.Network) error {
	sub := &safetensors.File{}
	for _, t := range f.Tensors {
		if rest, ok := strings.CutPrefix(t.Name, prefix); ok {
			t.Name = rest
			sub.Tensors = append(sub.Tensors, t)
		}
	}
	return n.LoadFile(sub)
}

// addParams appends parameter values (optimizer or EMA state) under prefix.
func addParams(f *safetensors.File, prefix string, ps []*layer.Param) error {
	for _, p := range ps {
		data, err := p.Value.Host()
		if err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		f.Tensors = append(f.Tensors, safetensors.Tensor{Name: prefix + p.Name, DType: safetensors.F32, Shape: p.Value.Shape(), F32: data})
	}
	return nil
}

// getter looks tensors up by name under prefix, for optim's Load functions.
func getter(f *safetensors.File, prefix string) func(string) ([]float32, bool) {
	return func(name string) ([]float32, bool) {
		t, ok := f.Tensor(prefix + name)
		if !ok || t.F32 == nil {
			return nil, false
		}
		return t.F32, true
	}
}

// loadParams fills ps from the tensors under prefix.
func loadParams(f *safetensors.File, prefix string, ps []*layer.Param) error {
	get := getter(f, prefix)
	for _, p := range ps {
		data, ok := get(p.Name)
		if !ok {
			return fmt.Errorf("tensor %s%s is missing", prefix, p.Name)
		}
		if err := p.Value.CopyFromHost(data); err != nil {
			return fmt.Errorf("%s%s: %w", prefix, p.Name, err)
		}
	}
	return nil
}

// warmStart loads the weights file at path into the network a run publishes
// (G of a GAN, the Up Sampler of a MultiStage run, the SR network) before step
// 0, with that network's own strict loading (model.Network.LoadFile: the
// file's preset, when it names one, must be the network's; every tensor must be
// there with its shape and nothing else; all checked before any weight is set).
// The rest starts as a fresh run would: a GAN's discriminator keeps its seeded
// initialisation and the optimizers their zero moments, while an EMA of the
// generator starts at the loaded weights (an EMA always starts at the initial
// weights).
func warmStart(path string, j job) error {
	w, err := safetensors.ReadFile(path, safetensors.Options{CheckFinite: true})
	if err != nil {
		return fmt.Errorf("%w: initial weights: %w", ErrBadOptions, err)
	}
	net, ema := j.trained()
	if err := net.LoadFile(w); err != nil {
		return fmt.Errorf("%w: initial weights %s: %w", ErrBadOptions, path, err)
	}
	if ema == nil {
		return nil
	}
	// The EMA's shadow was copied from the seeded weights when it was made;
	// restart it from the loaded ones, in the order NewEMA took them.
	src, shadow := net.Params(), ema.Params()
	if len(src) != len(shadow) {
		return fmt.Errorf("initial weights: EMA has %d tensors, the network %d", len(shadow), len(src))
	}
	for i, p := range src {
		if err := p.Value.Backend().Copy(shadow[i].Value.Buffer(), p.Value.Buffer()); err != nil {
			return fmt.Errorf("initial weights: EMA %s: %w", p.Name, err)
		}
	}
	return nil
}
