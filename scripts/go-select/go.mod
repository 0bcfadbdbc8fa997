module goselect

go 1.27
