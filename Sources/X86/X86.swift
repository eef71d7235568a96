// The X86 module: a pure-Swift model of an x86 CPU (no I/O, no VMM knowledge).
//
// Parts and where they live:
// - State/: `CPUState` (flat page-aligned buffer, fixed offsets in `CPUStateLayout`), `CodeMode`,
//   `SegmentRegister`/`SegmentCache`, `CPUModel` (host64, i8086, i80286, i80386), `Flags`.
// - Decode/: `Decoder.decode(_:mode:model:)` -> `DecodeResult` with a compact `DecodedInstruction`
//   (operation, operand descriptors, sizes, prefixes, memory base/index/scale/displacement/segment,
//   immediates). Opcode maps are text tables (`OpcodeTables`) parsed once.
// - Disasm/: `Disassembler.disassemble(_:mode:address:model:)`, Intel syntax as llvm-objdump spells it.
// - Exec/: `CPU` (step/run, events, replay of I/O and MMIO), memory access through one MMU function
//   (`translate`), segment loads through `loadSegment`, exception delivery through `raise` (real
//   mode: the core's IVT routine `deliverReal`; protected and long mode: the system layer's IDT
//   delivery; reported to the embedder as `.exception` only with `reportExceptions` or a vector in
//   `exceptionTrapBitmap`), a host-page cache of guest-physical page pointers, and a decode cache
//   keyed by physical address that stays correct under self-modifying code.
// - System/: the system layer (`SystemUnit`): MMU with `SoftTLB` over `PageWalker`, MSRs, CPUID,
//   descriptor tables, far transfers, IDT delivery, task switches (guide: SystemLayer.swift).
//
// Embedders that write guest memory behind the CPU's back (loaders, DMA) call
// `cpu.invalidateTLB()`, which also drops decoded instructions.
