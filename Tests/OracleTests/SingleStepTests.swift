import Foundation
import TestHostSupport
import Testing
import X86

@testable import Oracles

/// Runs every 10th vector of each file in a debug build (a fixed sample; `.ci/run` runs them all
/// from a release build with `trivisor singlestep`).
func runSingleStep(_ folder: String, model: CPUModel) throws {
  let directory = HostTools.singleStepDirectory + "/" + folder
  let report = try SingleStepRunner(model: model).run(directory: directory, stride: 10)
  for r in report.results where r.failed > 0 { print("  \(r.stem): \(r.firstFailure ?? "")") }
  #expect(!report.results.isEmpty)
  #expect(report.passed > 0)
  #expect(report.failed == 0, "\(folder): \(report.failed) tests fail")
}

@Test(.requires(.singleStepData))
func singleStep8086() throws { try runSingleStep("8086", model: .i8086) }

@Test(.requires(.singleStepData))
func singleStep80286() throws { try runSingleStep("80286", model: .i80286) }

@Test(.requires(.singleStepData))
func singleStep80386Sample() throws { try runSingleStep("80386-sample", model: .i80386) }

/// The MOO reader on a hand-built file: header, one test with registers, RAM and an exception.
@Test func mooParserReadsChunks() throws {
  func chunk(_ tag: String, _ payload: [UInt8]) -> [UInt8] {
    Array(tag.utf8) + littleEndian(UInt64(payload.count), count: 4) + payload
  }
  let regs = chunk(
    "REGS", littleEndian(0x1001, count: 2) + littleEndian(0x1234, count: 2) + littleEndian(0x0100, count: 2))
  let ram = chunk("RAM ", littleEndian(1, count: 4) + littleEndian(0x12345, count: 4) + [0xAB])
  let test =
    littleEndian(0, count: 4) + chunk("NAME", littleEndian(3, count: 4) + Array("nop".utf8))
    + chunk("BYTS", littleEndian(1, count: 4) + [0x90]) + chunk("INIT", regs + ram) + chunk("FINA", regs)
    + chunk("EXCP", [13] + littleEndian(0x400, count: 4)) + chunk("HASH", [0xDE, 0xAD])
  let file = chunk("MOO ", [1, 0, 0, 0] + littleEndian(1, count: 4) + Array("8086".utf8)) + chunk("TEST", test)
  let moo = try MOOFile(bytes: file)
  #expect(moo.cpuName == "8086")
  #expect(moo.tests.count == 1)
  let t = try #require(moo.tests.first)
  #expect(t.name == "nop" && t.bytes == [0x90] && t.hash == "dead")
  #expect(t.initial.register16("ax") == 0x1234 && t.initial.register16("ip") == 0x0100)
  #expect(t.initial.ram.first?.address == 0x12345 && t.initial.ram.first?.value == 0xAB)
  #expect(t.exception?.number == 13 && t.exception?.flagsAddress == 0x400)
  #expect(throws: SingleStepDataError.self) { try MOOFile(bytes: Array(file.dropLast(3))) }
}
