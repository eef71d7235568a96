import Foundation
import Launcher
import TestHostSupport
import Testing
import VMM

@testable import Holes

/// The holes probe on every engine (interp, dbt and kvm answer every probe correctly: none of them
/// runs the guest kernel at real ring 3), and the classifier on synthetic results of each class.
@Suite struct HolesTests {
  /// Results as the probe guest would leave them: every probe's expected answer, completed.
  static func correctResults() -> HoleProbeResults {
    var bytes = [UInt8](repeating: 0, count: HoleProbeResults.size)
    func put(_ value: UInt64, at offset: Int) {
      for i in 0..<8 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
    }
    put(HoleProbeResults.doneMagic, at: 0)
    put(~0, at: 0x10)
    for probe in HoleProbe.allCases {
      put(probe.expected.value, at: 0x40 + 16 * probe.rawValue)
      put(probe.expected.aux, at: 0x48 + 16 * probe.rawValue)
    }
    return HoleProbeResults(bytes: bytes)
  }

  @Test(arguments: ["interp", "dbt"])
  func softwareEnginesAnswerEveryProbeCorrectly(engine: String) throws {
    let column = try Holes.column(engine: engine)
    let results = try #require(column.results)
    #expect(results.completed)
    for probe in HoleProbe.allCases {
      #expect(column.classes[probe] == .correct, "\(engine) \(probe.name): \(results.observations[probe.rawValue])")
    }
  }

  /// The /dev/kvm of the development host (an AMD EPYC VM) stops with "emulation failure" at LAR,
  /// LSL, VERR, VERW and INT n (the instruction reaches KVM's emulator, which has no LAR, LSL,
  /// VERR or VERW): a known issue of that host's KVM, matched on its message, so any other wrong
  /// answer still fails.
  @Test(.requires(.kvm))
  func kvmAnswersEveryProbeCorrectly() throws {
    let column = try Holes.column(engine: "kvm")
    let results = try #require(column.results)
    #expect(results.completed)
    withKnownIssue("this host's KVM cannot emulate descriptor-reading instructions", isIntermittent: true) {
      for probe in HoleProbe.allCases {
        #expect(
          column.classes[probe] == .correct,
          "kvm \(probe.name): \(results.stops[probe.rawValue] ?? "\(results.observations[probe.rawValue])")")
      }
    } matching: { issue in
      issue.comments.contains { $0.rawValue.contains("KVM_EXIT_INTERNAL_ERROR: emulation failure") }
    }
  }

  @Test func theTableHasARowPerProbeAndAColumnPerEngine() throws {
    let columns = try Holes.engines.map { try Holes.column(engine: $0) }
    let report = HolesReport(columns: columns, umip: HostUMIP(cpuHasUMIP: true, kernelEnablesUMIP: false))
    let text = report.text()
    print(text)
    let lines = text.split(separator: "\n")
    #expect(
      lines.first?.split(separator: " ").filter { !$0.isEmpty } == [
        "instruction", "interp", "dbt", "kvm", "trap", "trap-no-umip", "hybrid",
      ])
    for probe in HoleProbe.allCases { #expect(lines.contains { $0.hasPrefix(probe.name + " ") }) }
    #expect(text.contains("host UMIP: CPU has it (CPUID.7.0:ECX[2]), kernel does not enable it"))
    #expect(text.contains("SGDT, SIDT, SLDT, SMSW, STR at real ring 3: without UMIP leak"))
    #expect(text.contains("(this host: without UMIP)"))
    // Every engine that ran: correct everywhere; a skipped one says why.
    for column in columns {
      if let why = column.skipped {
        #expect(text.contains("\(column.engine): skipped, \(why)"))
      } else if column.engine != "trap" && column.engine != Holes.trapWithoutUMIP {
        // trap's holes: trapLeaksWhatRunsNativelyAtRing3, trapWithoutUMIPLeaksTheDescriptorTableStores
        // kvm's emulation failures on the development host: see kvmAnswersEveryProbeCorrectly.
        for (probe, c) in column.classes where c != .correct {
          let why = column.results?.stops[probe.rawValue] ?? ""
          #expect(column.engine == "kvm" && why.contains("emulation failure"), "\(column.engine) \(probe.name): \(c)")
        }
      }
    }
    let json = try report.json()
    let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
    #expect((object["engines"] as? [Any])?.count == 6)
  }

  /// `trap` runs the probe's kernel code at real ring 3: what traps there is emulated with the
  /// guest's values (the UMIP five where the host has UMIP, INT n), what does not trap reads the
  /// real CPU: PUSHF/POPF show the real IF, selector reads and the CS after a far transfer show
  /// the real ring-3 selectors (leaks), LAR/LSL/VERR/VERW judge the guest's selector against the
  /// monitor's GDT (silently wrong).
  @Test(.requires(.kvm)) func trapLeaksWhatRunsNativelyAtRing3() throws {
    let column = try Holes.column(engine: "trap")
    let results = try #require(column.results)
    #expect(results.completed)
    let umip = HostUMIP.detect().cpuHasUMIP
    var expected: [HoleProbe: HoleClass] = [.intN: .correct]
    for probe in HoleProbe.allCases where probe.umipCovered { expected[probe] = umip ? .correct : .leaks }
    for probe in [HoleProbe.pushfAfterCLI, .popfClearsIF, .movFromCS, .movFromDS, .movFromSS, .pushPopFS] {
      expected[probe] = .leaks
    }
    for probe in [HoleProbe.farRET, .farJMP, .farCALL] { expected[probe] = .leaks }
    for probe in [HoleProbe.lar, .lsl, .verr, .verw] { expected[probe] = .silentlyWrong }
    for probe in HoleProbe.allCases {
      #expect(column.classes[probe] == expected[probe], "trap \(probe.name): \(results.observations[probe.rawValue])")
    }
  }

  /// The same probe on `trap` with the real CR4.UMIP left clear: the five stores UMIP would make
  /// trap leak the monitor's tables, CR0 and task register; every other row is what `trap` shows
  /// with UMIP. The table with and without UMIP, measured on one host. SMSW is the exception that
  /// can read right by accident: it stores the real CR0's low word, which equals the guest's when
  /// both have the same PE, MP, ET and NE bits (the probe guest's and the monitor's do).
  @Test(.requires(.kvm)) func trapWithoutUMIPLeaksTheDescriptorTableStores() throws {
    let without = try Holes.column(engine: Holes.trapWithoutUMIP)
    let with = try Holes.column(engine: "trap")
    let results = try #require(without.results)
    #expect(results.completed)
    for probe in HoleProbe.allCases {
      if probe == .smsw {
        #expect(without.classes[probe] == .leaks || without.classes[probe] == .correct, "\(probe.name)")
      } else if probe.umipCovered {
        #expect(
          without.classes[probe] == .leaks, "trap without UMIP \(probe.name): \(results.observations[probe.rawValue])")
      } else {
        #expect(without.classes[probe] == with.classes[probe], "\(probe.name)")
      }
    }
  }

  /// `hybrid` runs the probe's kernel code on dbt, where every sensitive instruction is a callout
  /// into the X86 model: no probe leaks or is wrong, unlike `trap` on the same host.
  @Test(.requires(.kvm)) func hybridClosesTheHoles() throws {
    let column = try Holes.column(engine: "hybrid")
    let results = try #require(column.results)
    #expect(results.completed)
    for probe in HoleProbe.allCases {
      #expect(column.classes[probe] == .correct, "hybrid \(probe.name): \(results.observations[probe.rawValue])")
    }
  }

  @Test func aSkippedProbeIsJumpedOverAndTheRestStillRun() throws {
    let engine = try EngineRegistry.make("interp")
    let skip = HoleProbe.lar.rawValue
    let run = try Holes.runOnce(on: engine, skipMask: 1 << UInt64(skip))
    #expect(run.engineStop == nil)
    let results = HoleProbeResults(bytes: run.bytes, stops: [skip: "skipped by the test"])
    #expect(results.completed)
    #expect(results.observations[skip] == HoleObservation(value: 0))  // never written
    let classes = classify(results)
    #expect(classes[.lar] == .faulted)
    #expect(HoleProbe.allCases.filter { $0 != .lar }.allSatisfy { classes[$0] == .correct })
  }

  @Test func expectedAnswersClassifyAsCorrect() {
    let classes = classify(Self.correctResults())
    #expect(HoleProbe.allCases.allSatisfy { classes[$0] == .correct })
  }

  @Test func aMonitorValueClassifiesAsALeakAndAnythingElseAsSilentlyWrong() {
    var results = Self.correctResults()
    // SGDT shows the monitor's GDT; POPF left IF set (the host's IF); MOV r, CS shows RPL 3.
    results.observations[HoleProbe.sgdt.rawValue] = HoleObservation(value: 0xFFFF_FE00_0000_1000, aux: 0x7F)
    results.observations[HoleProbe.popfClearsIF.rawValue] = HoleObservation(value: 0x202)
    results.observations[HoleProbe.movFromCS.rawValue] = HoleObservation(value: 0x0B)
    results.observations[HoleProbe.lsl.rawValue] = HoleObservation(value: 0xFFFF_FFFF, aux: 0)
    let monitor: [HoleProbe: HoleObservation] = [
      .sgdt: HoleObservation(value: 0xFFFF_FE00_0000_1000, aux: 0x7F),
      .popfClearsIF: HoleObservation(value: HoleProbe.interruptFlag),
      .movFromCS: HoleObservation(value: 0x33),
    ]
    let classes = classify(results, monitorValues: monitor)
    #expect(classes[.sgdt] == .leaks)
    #expect(classes[.popfClearsIF] == .leaks)
    #expect(classes[.movFromCS] == .silentlyWrong)  // RPL 3, but not the monitor's selector
    #expect(classes[.lsl] == .silentlyWrong)  // ZF clear
    #expect(classes[.sidt] == .correct)
    // Without monitor values nothing can be a leak.
    #expect(classify(results)[.sgdt] == .silentlyWrong)
  }

  @Test func anExceptionFaultsItsProbeAndLeavesTheRestNotRun() {
    var bytes = [UInt8](repeating: 0, count: HoleProbeResults.size)
    bytes[8] = UInt8(HoleProbe.sldt.rawValue)
    bytes[0x10] = 13  // #GP
    let results = HoleProbeResults(bytes: bytes)
    #expect(!results.completed)
    #expect(results.stops == [HoleProbe.sldt.rawValue: "exception 13"])
    let classes = classify(results)
    #expect(classes[.sgdt] == .silentlyWrong)  // zeros, not the guest's GDTR
    #expect(classes[.sldt] == .faulted)
    #expect(classes[.smsw] == .notRun)
    #expect(classes[.intN] == .notRun)
  }

  @Test func masksIgnoreBitsTheArchitectureLeavesOpen() {
    // LAR: bits 19:16 undefined; PUSHF: only IF judged.
    #expect(HoleObservation(value: 0x00AF_9B00, aux: 0x46).matches(HoleProbe.lar.expected, for: .lar))
    #expect(HoleObservation(value: 0x46).matches(HoleProbe.pushfAfterCLI.expected, for: .pushfAfterCLI))
    #expect(!HoleObservation(value: 0x246).matches(HoleProbe.pushfAfterCLI.expected, for: .pushfAfterCLI))
  }

  @Test func umipIsReadFromTheCPUInfoFlagsLine() {
    #expect(HostUMIP.cpuinfoHasUMIP("processor\t: 0\nflags\t\t: fpu vme umip pku\n"))
    #expect(!HostUMIP.cpuinfoHasUMIP("flags\t\t: fpu vme umipx\n"))
    #expect(!HostUMIP.cpuinfoHasUMIP("processor\t: 0\n"))
    let host = HostUMIP.detect()
    // The kernel can only enable what the CPU has.
    #expect(!host.kernelEnablesUMIP || host.cpuHasUMIP)
  }
}
