/// The feature flags the model advertises through CPUID, as the raw bits of the CPUID registers
/// that carry them (SDM vol. 2, "CPUID"). The system layer checks CR4 writes, EFER writes and
/// instruction availability against this set, so a guest can only enable what is advertised.
///
/// The system layer owns the system flags (`systemBaseline`); the CPU core adds the
/// general-purpose and SIMD flags it implements (for example `.cmov`, `.sse2`, `.popcnt`) with
/// `union` before building its `CPUIDTable`.
public struct CPUFeatures: Sendable, Equatable {
  /// CPUID.1:ECX.
  public var leaf1ECX: UInt32 = 0
  /// CPUID.1:EDX.
  public var leaf1EDX: UInt32 = 0
  /// CPUID.(7,0):EBX.
  public var leaf7EBX: UInt32 = 0
  /// CPUID.(7,0):ECX.
  public var leaf7ECX: UInt32 = 0
  /// CPUID.(7,0):EDX.
  public var leaf7EDX: UInt32 = 0
  /// CPUID.80000001H:ECX.
  public var extendedECX: UInt32 = 0
  /// CPUID.80000001H:EDX.
  public var extendedEDX: UInt32 = 0

  /// No features.
  public init() {}

  /// One feature flag: which register and which bit.
  public struct Flag: Sendable, Equatable {
    /// The CPUID output register a feature bit lives in.
    public enum Register: Sendable { case leaf1ECX, leaf1EDX, leaf7EBX, leaf7ECX, leaf7EDX, extendedECX, extendedEDX }
    /// The CPUID register.
    public var register: Register
    /// The bit number in it.
    public var bit: Int
    /// The feature bit `bit` of CPUID register `register`.
    public init(_ register: Register, _ bit: Int) {
      self.register = register
      self.bit = bit
    }

    // CPUID.1:EDX
    /// x87 FPU.
    public static let fpu = Flag(.leaf1EDX, 0)
    /// Debugging extensions (CR4.DE).
    public static let de = Flag(.leaf1EDX, 2)
    /// 4 MiB pages (CR4.PSE).
    public static let pse = Flag(.leaf1EDX, 3)
    /// RDTSC.
    public static let tsc = Flag(.leaf1EDX, 4)
    /// RDMSR/WRMSR.
    public static let msr = Flag(.leaf1EDX, 5)
    /// Physical address extension.
    public static let pae = Flag(.leaf1EDX, 6)
    /// Machine-check exception.
    public static let mce = Flag(.leaf1EDX, 7)
    /// CMPXCHG8B.
    public static let cx8 = Flag(.leaf1EDX, 8)
    /// On-chip local APIC.
    public static let apic = Flag(.leaf1EDX, 9)
    /// SYSENTER/SYSEXIT.
    public static let sep = Flag(.leaf1EDX, 11)
    /// Memory type range registers.
    public static let mtrr = Flag(.leaf1EDX, 12)
    /// Global pages.
    public static let pge = Flag(.leaf1EDX, 13)
    /// CMOVcc.
    public static let cmov = Flag(.leaf1EDX, 15)
    /// Page attribute table.
    public static let pat = Flag(.leaf1EDX, 16)
    /// 36-bit page-size extension.
    public static let pse36 = Flag(.leaf1EDX, 17)
    /// CLFLUSH.
    public static let clflush = Flag(.leaf1EDX, 19)
    /// MMX.
    public static let mmx = Flag(.leaf1EDX, 23)
    /// FXSAVE/FXRSTOR.
    public static let fxsr = Flag(.leaf1EDX, 24)
    /// SSE.
    public static let sse = Flag(.leaf1EDX, 25)
    /// SSE2.
    public static let sse2 = Flag(.leaf1EDX, 26)
    // CPUID.1:ECX
    /// SSE3.
    public static let sse3 = Flag(.leaf1ECX, 0)
    /// SSSE3.
    public static let ssse3 = Flag(.leaf1ECX, 9)
    /// CMPXCHG16B.
    public static let cx16 = Flag(.leaf1ECX, 13)
    /// Process-context identifiers.
    public static let pcid = Flag(.leaf1ECX, 17)
    /// SSE4.1.
    public static let sse41 = Flag(.leaf1ECX, 19)
    /// SSE4.2.
    public static let sse42 = Flag(.leaf1ECX, 20)
    /// x2APIC.
    public static let x2apic = Flag(.leaf1ECX, 21)
    /// MOVBE.
    public static let movbe = Flag(.leaf1ECX, 22)
    /// POPCNT.
    public static let popcnt = Flag(.leaf1ECX, 23)
    /// The local APIC timer's TSC-deadline mode (IA32_TSC_DEADLINE).
    public static let tscDeadline = Flag(.leaf1ECX, 24)
    /// XSAVE family.
    public static let xsave = Flag(.leaf1ECX, 26)
    /// XSAVE enabled by the OS (mirrors CR4.OSXSAVE).
    public static let osxsave = Flag(.leaf1ECX, 27)
    /// Running under a hypervisor (leaf 40000000H exists).
    public static let hypervisor = Flag(.leaf1ECX, 31)
    // CPUID.(7,0):EBX
    /// RDFSBASE/WRFSBASE/RDGSBASE/WRGSBASE.
    public static let fsgsbase = Flag(.leaf7EBX, 0)
    /// BMI1.
    public static let bmi1 = Flag(.leaf7EBX, 3)
    /// SMEP.
    public static let smep = Flag(.leaf7EBX, 7)
    /// BMI2.
    public static let bmi2 = Flag(.leaf7EBX, 8)
    /// Enhanced REP MOVSB/STOSB.
    public static let erms = Flag(.leaf7EBX, 9)
    /// INVPCID.
    public static let invpcid = Flag(.leaf7EBX, 10)
    /// SMAP.
    public static let smap = Flag(.leaf7EBX, 20)
    // CPUID.(7,0):ECX
    /// UMIP.
    public static let umip = Flag(.leaf7ECX, 2)
    /// Five-level paging.
    public static let la57 = Flag(.leaf7ECX, 16)
    /// RDPID.
    public static let rdpid = Flag(.leaf7ECX, 22)
    // CPUID.80000001H:ECX
    /// LAHF/SAHF in 64-bit mode.
    public static let lahfLM = Flag(.extendedECX, 0)
    /// LZCNT (AMD: advanced bit manipulation).
    public static let abm = Flag(.extendedECX, 5)
    // CPUID.80000001H:EDX
    /// SYSCALL/SYSRET.
    public static let syscall = Flag(.extendedEDX, 11)
    /// Execute-disable bit.
    public static let nx = Flag(.extendedEDX, 20)
    /// 1 GiB pages.
    public static let page1GB = Flag(.extendedEDX, 26)
    /// RDTSCP and IA32_TSC_AUX.
    public static let rdtscp = Flag(.extendedEDX, 27)
    /// Intel 64 / long mode.
    public static let longMode = Flag(.extendedEDX, 29)
  }

  private func word(_ register: Flag.Register) -> UInt32 {
    switch register {
    case .leaf1ECX: return leaf1ECX
    case .leaf1EDX: return leaf1EDX
    case .leaf7EBX: return leaf7EBX
    case .leaf7ECX: return leaf7ECX
    case .leaf7EDX: return leaf7EDX
    case .extendedECX: return extendedECX
    case .extendedEDX: return extendedEDX
    }
  }

  private mutating func update(_ register: Flag.Register, _ change: (inout UInt32) -> Void) {
    switch register {
    case .leaf1ECX: change(&leaf1ECX)
    case .leaf1EDX: change(&leaf1EDX)
    case .leaf7EBX: change(&leaf7EBX)
    case .leaf7ECX: change(&leaf7ECX)
    case .leaf7EDX: change(&leaf7EDX)
    case .extendedECX: change(&extendedECX)
    case .extendedEDX: change(&extendedEDX)
    }
  }

  /// Whether `flag` is set.
  public func contains(_ flag: Flag) -> Bool { word(flag.register) & (1 << UInt32(flag.bit)) != 0 }

  /// Sets `flag`.
  public mutating func insert(_ flag: Flag) { update(flag.register) { $0 |= 1 << UInt32(flag.bit) } }

  /// Clears `flag`.
  public mutating func remove(_ flag: Flag) { update(flag.register) { $0 &= ~(1 << UInt32(flag.bit)) } }

  /// The set of `flags`.
  public init(_ flags: [Flag]) {
    for flag in flags { insert(flag) }
  }

  /// The union of two sets.
  public func union(_ other: CPUFeatures) -> CPUFeatures {
    var r = self
    r.leaf1ECX |= other.leaf1ECX
    r.leaf1EDX |= other.leaf1EDX
    r.leaf7EBX |= other.leaf7EBX
    r.leaf7ECX |= other.leaf7ECX
    r.leaf7EDX |= other.leaf7EDX
    r.extendedECX |= other.extendedECX
    r.extendedEDX |= other.extendedEDX
    return r
  }

  /// The system features this layer implements for a 64-bit CPU: CR4.DE, PSE/PSE-36, TSC, MSRs,
  /// PAE, PGE, PAT, SYSENTER/SYSEXIT, SYSCALL/SYSRET, NX, 1 GiB pages, long mode, SMEP, SMAP,
  /// UMIP and RDTSCP's TSC_AUX. PCID, LA57, x2APIC and XSAVE are left for the embedder to opt in.
  public static let systemBaseline = CPUFeatures([
    .de, .pse, .tsc, .msr, .pae, .sep, .pge, .pat, .pse36, .syscall, .nx, .page1GB, .longMode, .smep, .smap,
    .umip, .rdtscp, .lahfLM,
  ])

  /// The CR4 bits a guest may set given these features (SDM vol. 3, "Control Registers":
  /// setting an unsupported bit is #GP(0)).
  public var allowedCR4: UInt64 {
    var bits = CR4.tsd | CR4.pce | CR4.mce
    if contains(.de) { bits |= CR4.de }
    if contains(.pse) { bits |= CR4.pse }
    if contains(.pae) { bits |= CR4.pae }
    if contains(.pge) { bits |= CR4.pge }
    if contains(.fxsr) { bits |= CR4.osfxsr }
    if contains(.sse) { bits |= CR4.osxmmexcpt }
    if contains(.umip) { bits |= CR4.umip }
    if contains(.la57) { bits |= CR4.la57 }
    if contains(.fsgsbase) { bits |= CR4.fsgsbase }
    if contains(.pcid) { bits |= CR4.pcide }
    if contains(.xsave) { bits |= CR4.osxsave }
    if contains(.smep) { bits |= CR4.smep }
    if contains(.smap) { bits |= CR4.smap }
    return bits
  }

  /// The EFER bits a guest may set: SCE with SYSCALL, LME with long mode, NXE with NX (LMA is
  /// read-only and maintained by the processor).
  public var allowedEFER: UInt64 {
    var bits: UInt64 = 0
    if contains(.syscall) { bits |= EFER.sce }
    if contains(.longMode) { bits |= EFER.lme | EFER.lma }
    if contains(.nx) { bits |= EFER.nxe }
    return bits
  }
}
