// The KVMEngine module.
