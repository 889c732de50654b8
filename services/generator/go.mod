module github.com/hirez-ml/hirez/services/generator

go 1.26
