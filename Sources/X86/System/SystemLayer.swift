/// The system-architecture layer of the x86 model: everything privileged or mode-dependent that
/// is not general-purpose arithmetic. It works on `CPUState` plus a `SystemMemoryAccess` (linear
/// memory with supervisor/user privilege) and throws the core's `Fault`, so the core's instruction
/// handlers call it with a plain `try` and deliver what it throws.
///
/// The simplest way in is one `SystemUnit` per vCPU: it owns the MMU/TLB, MSRs, features and
/// CPUID and applies TLB effects itself. Underneath, the core can also call the pieces directly
/// (one call per instruction; "effects" are `SystemEffects` the core
/// applies to its `SoftTLB` with `tlb.apply(effects)` and, for `.modeChanged`, by refreshing its
/// decode mode from `state.codeMode`):
///
/// | Instruction / event | Call |
/// |---|---|
/// | MOV Sreg, POP Sreg, LDS/LES/LFS/LGS/LSS | `SegmentLoader.loadData(_:selector:state:memory:)` |
/// | far JMP / far CALL | `FarTransfers.jump(selector:offset:operandSize:returnRIP:...)`, `.call` |
/// | RETF [imm16] | `ReturnInstructions.farReturn(operandSize:release:...)` |
/// | IRET/IRETD/IRETQ | `ReturnInstructions.iret(operandSize:returnRIP:...)` |
/// | INT n / INT3 / INTO / INT1 | `InterruptDelivery.deliver(vector:kind: .software(.intN), returnRIP:` |
/// | | `next, instructionRIP: start, ...)` |
/// | exception raised by an instruction | `InterruptDelivery.deliver(fault, returnRIP:...)` |
/// | external interrupt / NMI | `InterruptDelivery.deliver(vector:kind: .external, returnRIP: next, ...)` |
/// | MOV CRn, MOV from CRn | `ControlRegisters.write(_:value:state:features:)` / `.read` |
/// | MOV DRn | `ControlRegisters.writeDebug` / `.readDebug` |
/// | CLTS, LMSW, SMSW | `ControlRegisters.clts`, `.lmsw`, `.smsw` |
/// | LGDT/LIDT, SGDT/SIDT | `DescriptorTableInstructions.load(_:limit:base:operandSize:state:)`, `.store` |
/// | LLDT/SLDT, LTR/STR | `DescriptorTableInstructions.loadLDTR`, `.storeLDTR`, `.loadTR`, `.storeTR` |
/// | LAR, LSL, VERR, VERW | `DescriptorQueries.lar`, `.lsl`, `.verify(write:)` |
/// | RDMSR / WRMSR | `MSRFile.read(_:state:hostTSC:)` / `.write(_:value:state:hostTSC:)` |
/// | SYSCALL/SYSRET, SYSENTER/SYSEXIT, SWAPGS | `FastSystemCalls.*` |
/// | IN/OUT/INS/OUTS permission | `IOPermission.check(port:size:state:memory:)` before the access |
/// | INVLPG, RDTSC/RDTSCP, HLT/INVD/WBINVD | `SystemInstructions.invlpg`, `.rdtsc`, `.rdtscp`, `.requireRing0` |
/// | CPUID | `CPUIDTable(features:).query(leaf:subleaf:)` |
/// | memory access (hot path) | `mmu.tlb.hostPointer(_:kind:user:)`, on a miss `mmu.translate(...)` |
/// | memory interface for all of the above | `MMUSystemMemory(mmu:state:)` |
///
/// Delivery returns a `DeliveryOutcome`: `.delivered`, `.taskSwitched` (flush the non-global
/// TLB), `.tripleFault` (the VM's shutdown exit), `.event` (an MMIO access during delivery: serve
/// it and deliver again) or `.unimplemented` (stop with an internal error). A `Fault` whose
/// `unimplementedFeature` is non-nil must likewise never be delivered to the guest.
///
/// #PF and CR2: `Fault` carries no address, so the core's `SystemMemoryAccess` adapter (and its
/// own memory path) sets CR2 when it raises #PF; `deliver(..., pageFaultAddress:)` can set it too.
public enum SystemLayer {}
