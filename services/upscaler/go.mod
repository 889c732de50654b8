module github.com/hirez-ml/hirez/services/upscaler

go 1.26
