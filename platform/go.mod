module github.com/hirez-ml/hirez/platform

go 1.26
