package hirezv1

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// limitsByName lists every limit the .proto comments may quote as "Name (value)".
var limitsByName = map[string]int64{
	"MaxMessageBytes":            MaxMessageBytes,
	"DefaultLatentDim":           DefaultLatentDim,
	"MaxLatentDim":               MaxLatentDim,
	"MaxGenerateCount":           MaxGenerateCount,
	"MaxStreamGenerateCount":     MaxStreamGenerateCount,
	"DefaultImageSize":           DefaultImageSize,
	"MinImageSize":               MinImageSize,
	"MaxImageSize":               MaxImageSize,
	"DefaultScale":               DefaultScale,
	"MaxNameLength":              MaxNameLength,
	"MaxLabelLength":             MaxLabelLength,
	"MaxUpscaleBatch":            MaxUpscaleBatch,
	"MaxUpscaleInputSide":        MaxUpscaleInputSide,
	"MaxUpscaleOutputSide":       MaxUpscaleOutputSide,
	"MaxUpscaleCallOutputPixels": MaxUpscaleCallOutputPixels,
	"MaxStreamUpscaleInFlight":   MaxStreamUpscaleInFlight,
	"MaxGatewayCount":            MaxGatewayCount,
	"MaxEncodedImageBytes":       MaxEncodedImageBytes,
	"MaxTrainBatchSize":          MaxTrainBatchSize,
	"MaxSampleGridBytes":         MaxSampleGridBytes,
	"DefaultPageSize":            DefaultPageSize,
	"MaxPageSize":                MaxPageSize,
	"DefaultDownloadChunkBytes":  DefaultDownloadChunkBytes,
	"MaxDownloadChunkBytes":      MaxDownloadChunkBytes,
	"RawImageChannels":           RawImageChannels,
}

// TestProtoCommentsQuoteLimits keeps the .proto comments and limits.go in step:
// every "Name (value)" in a comment must name a constant and give its value.
func TestProtoCommentsQuoteLimits(t *testing.T) {
	files, err := filepath.Glob("*.proto")
	if err != nil || len(files) == 0 {
		t.Fatalf("no .proto files next to the test: %v", err)
	}
	// "MaxGenerateCount (64)", "MaxMessageBytes (16 MiB)", "(4 Mi pixels, ...)".
	re := regexp.MustCompile(`\b((?:Max|Min|Default)[A-Za-z]+|RawImageChannels) \((\d+)(?: (KiB|MiB|Mi))?`)
	quoted := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			want, ok := limitsByName[m[1]]
			if !ok {
				t.Errorf("%s: comment quotes %s, which limits.go does not define", f, m[1])
				continue
			}
			n, _ := strconv.ParseInt(m[2], 10, 64)
			switch m[3] {
			case "KiB":
				n <<= 10
			case "MiB", "Mi":
				n <<= 20
			}
			if n != want {
				t.Errorf("%s: comment says %s = %s %s, limits.go says %d", f, m[1], m[2], m[3], want)
			}
			quoted++
		}
	}
	if quoted < 10 {
		t.Errorf("only %d limits quoted in .proto comments; the pattern has probably stopped matching", quoted)
	}
}

// TestLimitsFitMessages checks that the worst valid request or response of each
// RPC with bulk bytes fits in MaxMessageBytes (with 1 MiB for framing and
// provenance).
func TestLimitsFitMessages(t *testing.T) {
	const slack = 1 << 20
	rgb := func(side int64) int64 { return side * side * RawImageChannels }
	tests := []struct {
		name  string
		bytes int64
	}{
		{"Generate response", MaxGenerateCount * rgb(MaxImageSize)},
		{"StreamGenerate request (latents)", MaxStreamGenerateCount * MaxLatentDim * 4},
		{"Upscale request", MaxUpscaleBatch * rgb(MaxUpscaleInputSide)},
		{"Upscale response", MaxUpscaleCallOutputPixels * RawImageChannels},
		{"StreamUpscale response", rgb(MaxUpscaleOutputSide)},
		{"Gateway Upscale request", MaxEncodedImageBytes},
		{"WatchJob sample", MaxSampleGridBytes},
		{"DownloadModel chunk", MaxDownloadChunkBytes},
	}
	for _, tt := range tests {
		if tt.bytes+slack > MaxMessageBytes {
			t.Errorf("%s: %d bytes + %d slack exceeds MaxMessageBytes %d", tt.name, tt.bytes, slack, MaxMessageBytes)
		}
	}
	if MaxUpscaleOutputSide < 4*MaxImageSize {
		t.Errorf("MaxUpscaleOutputSide %d cannot hold a x4 upscale of a MaxImageSize image", MaxUpscaleOutputSide)
	}
	if MaxUpscaleOutputSide*MaxUpscaleOutputSide > MaxUpscaleCallOutputPixels {
		t.Errorf("one maximal upscale output does not fit MaxUpscaleCallOutputPixels")
	}
	if DefaultPageSize > MaxPageSize || DefaultDownloadChunkBytes > MaxDownloadChunkBytes {
		t.Errorf("a default exceeds its maximum")
	}
	if _, ok := ValidImageSize(DefaultImageSize); !ok {
		t.Errorf("DefaultImageSize %d is not a valid size", DefaultImageSize)
	}
	if MaxGenerateCount > MaxStreamGenerateCount || DefaultLatentDim > MaxLatentDim {
		t.Errorf("unary limits must not exceed streaming ones")
	}
}

// TestDescriptors checks API rules buf lint does not: every enum's zero value
// ends in _UNSPECIFIED, and every hirez.v1 service is registered and ends in
// "Service".
func TestDescriptors(t *testing.T) {
	enums, services := 0, 0
	protoregistry.GlobalFiles.RangeFilesByPackage("hirez.v1", func(fd protoreflect.FileDescriptor) bool {
		var walkEnums func(protoreflect.EnumDescriptors)
		walkEnums = func(es protoreflect.EnumDescriptors) {
			for i := 0; i < es.Len(); i++ {
				e := es.Get(i)
				enums++
				zero := e.Values().ByNumber(0)
				if zero == nil || !strings.HasSuffix(string(zero.Name()), "_UNSPECIFIED") {
					t.Errorf("enum %s: zero value must be *_UNSPECIFIED", e.FullName())
				}
			}
		}
		walkEnums(fd.Enums())
		var walkMsgs func(protoreflect.MessageDescriptors)
		walkMsgs = func(ms protoreflect.MessageDescriptors) {
			for i := 0; i < ms.Len(); i++ {
				walkEnums(ms.Get(i).Enums())
				walkMsgs(ms.Get(i).Messages())
			}
		}
		walkMsgs(fd.Messages())
		for i := 0; i < fd.Services().Len(); i++ {
			s := fd.Services().Get(i)
			services++
			if !strings.HasSuffix(string(s.Name()), "Service") {
				t.Errorf("service %s must end in Service", s.FullName())
			}
		}
		return true
	})
	if enums < 5 || services != 5 {
		t.Errorf("found %d enums and %d services in hirez.v1; want >= 5 and 5", enums, services)
	}
}
