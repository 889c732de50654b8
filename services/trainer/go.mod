module github.com/hirez-ml/hirez/services/trainer

go 1.26
