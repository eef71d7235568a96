/// Fixed byte offsets of every field in `CPUState`'s raw buffer. Generated code (a binary
/// translator) addresses the state through these offsets, so they never change meaning; new
/// fields go into reserved room. Every slot is a little-endian UInt64.
///
/// | offset | field |
/// |---|---|
/// | 0x000-0x07F | GPRs 0-15 in encoding order (rax rcx rdx rbx rsp rbp rsi rdi r8-r15) |
/// | 0x080 | RIP |
/// | 0x088 | RFLAGS (architectural value; exact whenever the interpreter's fast path is not running) |
/// | 0x090-0x0AF | the fast path's lazy status-flags record: kind, size and overridden flags 0x090, result 0x098, operands 0x0A0 and 0x0A8 (`CPU+LazyFlags.swift`; kind 0 outside the fast path) |
/// | 0x0B0-0x0BF | reserved |
/// | 0x0C0-0x1BF | 8 segments ES CS SS DS FS GS LDTR TR, 32 bytes each: selector, base, limit, attributes |
/// | 0x1C0 | GDTR base, 0x1C8 GDTR limit, 0x1D0 IDTR base, 0x1D8 IDTR limit |
/// | 0x1E0 | CR0, 0x1E8 CR2, 0x1F0 CR3, 0x1F8 CR4, 0x200 CR8 |
/// | 0x208 | EFER |
/// | 0x210-0x24F | DR0-DR7 |
/// | 0x250 | STAR, 0x258 LSTAR, 0x260 CSTAR, 0x268 SFMASK |
/// | 0x270 | SYSENTER_CS, 0x278 SYSENTER_ESP, 0x280 SYSENTER_EIP |
/// | 0x288 | KERNEL_GS_BASE, 0x290 TSC_AUX, 0x298 PAT, 0x2A0 APIC_BASE, 0x2A8 TSC offset |
/// | 0x2B0 | CPL (current privilege level), 0x2B8 code mode (16/32/64) |
/// | 0x2C0-0x2FF | the binary translator's own: exit reason 0x2C0, budget left at a callout 0x2C8, budget at entry 0x2D0, scratch 0x2D8, read-group pointers 0x2E0-0x2F8 |
/// | 0x300-0x305 | the segment access summary: one byte per segment ES CS SS DS FS GS (`SegmentAccess`) |
/// | 0x306-0x30F | reserved |
/// | 0x310 | the binary translator's inline indirect-branch table hits, 0x318 its misses |
/// | 0x320 | XCR0 (`XGETBV`/`XSETBV`, `CPU+XSAVE.swift`; 1 after RESET) |
/// | 0x328 | the binary translator's count of instructions completed by `sbt`'s run-time blocks |
/// | 0x330-0x3FF | reserved |
/// | 0x400-0x4FF | XMM0-15, 16 bytes each (0x500-0x5FF reserved for YMM upper halves) |
/// | 0x600-0x69F | the first 160 bytes of the FXSAVE image: FCW, FSW, FTW, FOP, FIP, FDP, MXCSR (0x618), MXCSR_MASK, ST0-7 (`CPU+SIMDState.swift`) |
/// | 0x6A0-0x6FF | reserved |
/// | 0x700-0xFFF | reserved |
public enum CPUStateLayout {
  /// 16 general registers, RAX..R15, 8 bytes each.
  public static let gprs = 0x000
  /// RIP.
  public static let rip = 0x080
  /// RFLAGS (materialized).
  public static let rflags = 0x088
  /// The fast path's lazily evaluated status-flags record (four slots; see `CPU+LazyFlags.swift`).
  public static let lazyFlags = 0x090
  /// Segment caches (ES, CS, SS, DS, FS, GS, LDTR, TR), 32 bytes each.
  public static let segments = 0x0C0
  /// Size of one segment record; fields at +0 selector, +8 base, +16 limit, +24 attributes.
  public static let segmentStride = 32
  /// GDTR base.
  public static let gdtrBase = 0x1C0
  /// GDTR limit.
  public static let gdtrLimit = 0x1C8
  /// IDTR base.
  public static let idtrBase = 0x1D0
  /// IDTR limit.
  public static let idtrLimit = 0x1D8
  /// CR0.
  public static let cr0 = 0x1E0
  /// CR2.
  public static let cr2 = 0x1E8
  /// CR3.
  public static let cr3 = 0x1F0
  /// CR4.
  public static let cr4 = 0x1F8
  /// CR8 (TPR).
  public static let cr8 = 0x200
  /// IA32_EFER.
  public static let efer = 0x208
  /// DR0-DR7, 8 bytes each.
  public static let debugRegisters = 0x210
  /// IA32_STAR.
  public static let star = 0x250
  /// IA32_LSTAR.
  public static let lstar = 0x258
  /// IA32_CSTAR.
  public static let cstar = 0x260
  /// IA32_FMASK.
  public static let sfmask = 0x268
  /// IA32_SYSENTER_CS.
  public static let sysenterCS = 0x270
  /// IA32_SYSENTER_ESP.
  public static let sysenterESP = 0x278
  /// IA32_SYSENTER_EIP.
  public static let sysenterEIP = 0x280
  /// IA32_KERNEL_GS_BASE.
  public static let kernelGSBase = 0x288
  /// IA32_TSC_AUX.
  public static let tscAux = 0x290
  /// IA32_PAT.
  public static let pat = 0x298
  /// IA32_APIC_BASE.
  public static let apicBase = 0x2A0
  /// The guest TSC's offset from the host counter.
  public static let tscOffset = 0x2A8
  /// The current privilege level (0-3).
  public static let cpl = 0x2B0
  /// The code mode (16, 32 or 64) as a number.
  public static let codeMode = 0x2B8
  /// Why generated code last returned to the binary translator's dispatcher (its own encoding;
  /// no architectural meaning).
  public static let translatorExit = 0x2C0
  /// The instruction budget generated code had left when it made its latest callout.
  public static let translatorBudgetLeft = 0x2C8
  /// The instruction budget the dispatcher gave generated code when it entered it.
  public static let translatorBudget = 0x2D0
  /// A word generated code keeps for itself (an IMUL's result while its flags are still owed).
  public static let translatorScratch = 0x2D8
  /// Four words generated code keeps host pointers in (the checked base of a group of reads).
  public static let translatorReadGroups = 0x2E0
  /// The segment access summary, one byte per segment register ES..GS (`SegmentAccess`), derived
  /// from the segment caches by `CPUState.setSegment`.
  public static let segmentAccess = 0x300
  /// How many of generated code's inline indirect-branch table lookups found their block (the
  /// translator collects and clears the count).
  public static let translatorIndirectHits = 0x310
  /// How many of those lookups missed (the dispatcher looked the block up instead).
  public static let translatorIndirectMisses = 0x318
  /// Guest instructions completed by blocks the `sbt` engine compiled at run time (not from its
  /// translation file) in the current entry into generated code (the translator clears it).
  public static let translatorDynamicInstructions = 0x328
  /// XCR0, the XSAVE feature-enabled mask (bit 0 x87, bit 1 SSE; 1 after RESET).
  public static let xcr0 = 0x320
  /// XMM0-XMM15, 16 bytes each.
  public static let xmm = 0x400
  /// The x87 registers and MXCSR, laid out as bytes 0-159 of the FXSAVE image.
  public static let fxLegacy = 0x600
  /// FCW, the x87 control word (bytes 0-1 of the FXSAVE image).
  public static let fcw = fxLegacy
  /// MXCSR (bytes 24-27 of the FXSAVE image).
  public static let mxcsr = fxLegacy + 24
  /// Size of the state page (page-aligned).
  public static let size = 0x1000
  /// The paging TLB's entries (`SoftTLB`) right after the state page, in the same allocation: a
  /// translator's generated code reaches both from the one register holding the state page.
  public static let pagingTLB = 0x1000
}
