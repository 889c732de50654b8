// Package limits holds the limits of the hirez.v1 API and its rules for
// names, version digests, aliases and model references. It is plain Go with
// no generated code, so domain packages (the trainer's registry and job
// specs, the serving services) use the same rules as the API without
// importing the generated package; hirezv1 (proto/hirez/v1) forwards the
// constants for code that speaks the API.
//
// The .proto comments quote these values; servers enforce exactly these
// constants (answering INVALID_ARGUMENT past them), and docs and clients
// read them from here, so there is one source of truth. Changing one is an
// API change: update the .proto comment in the same commit.
package limits

const (
	// MaxMessageBytes is the gRPC message size every hirez server and client
	// must allow (grpc.MaxRecvMsgSize, grpc.MaxCallRecvMsgSize, and the send
	// sizes). The per-call limits below keep every valid message under it.
	MaxMessageBytes = 16 << 20

	// RawImageChannels is the only RawImage.channels value accepted (RGB).
	RawImageChannels = 3

	// DefaultLatentDim is the latent length of the study's generators.
	DefaultLatentDim = 100
	// MaxLatentDim bounds Latent.values (and any model's latent dimension).
	MaxLatentDim = 512

	// MaxGenerateCount is the most seeds or latents in one Generate call.
	MaxGenerateCount = 64
	// MaxStreamGenerateCount is the most seeds or latents in one StreamGenerate call.
	MaxStreamGenerateCount = 4096

	// MinImageSize and MaxImageSize bound square image sides that hirez
	// generates (generator output, gateway size, training resolution); only
	// powers of two in between are valid: 32, 64, 128, 256.
	MinImageSize = 32
	MaxImageSize = 256
	// DefaultImageSize is the gateway's output side when the request says 0.
	DefaultImageSize = 256

	// MaxUpscaleBatch is the most images in one UpscalerService.Upscale call.
	MaxUpscaleBatch = 16
	// MaxUpscaleInputSide bounds the width and height of an image to upscale.
	MaxUpscaleInputSide = 512
	// MaxUpscaleOutputSide bounds width*scale and height*scale.
	MaxUpscaleOutputSide = 1024
	// MaxUpscaleCallOutputPixels bounds the sum of output pixels of one
	// UpscalerService.Upscale call, so the response fits in MaxMessageBytes.
	MaxUpscaleCallOutputPixels = 4 << 20
	// MaxStreamUpscaleInFlight is how many images a StreamUpscale server reads
	// ahead of the results it has sent.
	MaxStreamUpscaleInFlight = 32
	// DefaultScale is the scale used when a request says 0.
	DefaultScale = 2

	// MaxGatewayCount is the most images in one GatewayService.GenerateImages call.
	MaxGatewayCount = 256
	// MaxEncodedImageBytes bounds the encoded image of GatewayService.Upscale.
	MaxEncodedImageBytes = 8 << 20

	// MaxTrainBatchSize bounds Hyperparameters.batch_size.
	MaxTrainBatchSize = 1024
	// MaxSampleGridBytes bounds the PNG of a SampleGrid.
	MaxSampleGridBytes = 4 << 20

	// DefaultPageSize and MaxPageSize apply to every List RPC's page_size.
	DefaultPageSize = 50
	MaxPageSize     = 1000

	// DefaultDownloadChunkBytes and MaxDownloadChunkBytes apply to
	// DownloadModelRequest.chunk_size.
	DefaultDownloadChunkBytes = 256 << 10
	MaxDownloadChunkBytes     = 1 << 20

	// MaxNameLength bounds model names, aliases and job ids.
	MaxNameLength = 63
	// MaxLabelLength bounds the label of a generate request, in bytes.
	MaxLabelLength = 64
)

// ValidScale reports whether s is an allowed upscale factor (2 or 4) after
// reading 0 as DefaultScale, and returns the factor to use.
func ValidScale(s int32) (int32, bool) {
	if s == 0 {
		s = DefaultScale
	}
	return s, s == 2 || s == 4
}

// ValidImageSize reports whether n is an allowed square image side
// (a power of two in MinImageSize..MaxImageSize) after reading 0 as
// DefaultImageSize, and returns the side to use.
func ValidImageSize(n int32) (int32, bool) {
	if n == 0 {
		n = DefaultImageSize
	}
	return n, n >= MinImageSize && n <= MaxImageSize && n&(n-1) == 0
}
