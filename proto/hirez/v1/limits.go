package hirezv1

import "github.com/hirez-ml/hirez/proto/hirez/limits"

// The limits of the hirez.v1 API and the rules for names and versions live
// in package limits (proto/hirez/limits), which has no generated code so
// domain packages can use it without this one; they are forwarded here for
// code that speaks the API. See limits for what each one means.
const (
	MaxMessageBytes            = limits.MaxMessageBytes
	RawImageChannels           = limits.RawImageChannels
	DefaultLatentDim           = limits.DefaultLatentDim
	MaxLatentDim               = limits.MaxLatentDim
	MaxGenerateCount           = limits.MaxGenerateCount
	MaxStreamGenerateCount     = limits.MaxStreamGenerateCount
	MinImageSize               = limits.MinImageSize
	MaxImageSize               = limits.MaxImageSize
	DefaultImageSize           = limits.DefaultImageSize
	MaxUpscaleBatch            = limits.MaxUpscaleBatch
	MaxUpscaleInputSide        = limits.MaxUpscaleInputSide
	MaxUpscaleOutputSide       = limits.MaxUpscaleOutputSide
	MaxUpscaleCallOutputPixels = limits.MaxUpscaleCallOutputPixels
	MaxStreamUpscaleInFlight   = limits.MaxStreamUpscaleInFlight
	DefaultScale               = limits.DefaultScale
	MaxGatewayCount            = limits.MaxGatewayCount
	MaxEncodedImageBytes       = limits.MaxEncodedImageBytes
	MaxTrainBatchSize          = limits.MaxTrainBatchSize
	MaxSampleGridBytes         = limits.MaxSampleGridBytes
	DefaultPageSize            = limits.DefaultPageSize
	MaxPageSize                = limits.MaxPageSize
	DefaultDownloadChunkBytes  = limits.DefaultDownloadChunkBytes
	MaxDownloadChunkBytes      = limits.MaxDownloadChunkBytes
	MaxNameLength              = limits.MaxNameLength
	MaxLabelLength             = limits.MaxLabelLength

	AliasProduction = limits.AliasProduction
	AliasCandidate  = limits.AliasCandidate
	DigestPrefix    = limits.DigestPrefix
)

// ValidScale is limits.ValidScale.
func ValidScale(s int32) (int32, bool) { return limits.ValidScale(s) }

// ValidImageSize is limits.ValidImageSize.
func ValidImageSize(n int32) (int32, bool) { return limits.ValidImageSize(n) }

// ValidName is limits.ValidName.
func ValidName(s string) bool { return limits.ValidName(s) }

// IsDigest is limits.IsDigest.
func IsDigest(v string) bool { return limits.IsDigest(v) }
