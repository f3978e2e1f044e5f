print("asmtd")
