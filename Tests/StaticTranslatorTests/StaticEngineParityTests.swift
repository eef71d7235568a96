import Interpreter
import Testing
import Translator
import VMM

@testable import StaticTranslator

/// The same guests on interp, dbt and sbt (with their translation file): identical console output
/// and exit status; sbt runs blocks from the file, rejects the page the guest wrote, and
/// translates at run time the code only a computed jump reaches.
struct StaticEngineParityTests {
  static func engines(for guest: [UInt8]) throws -> [(String, any Engine)] {
    let file = try StaticTestGuest.translation(of: guest).file
    return [
      ("interp", InterpreterEngine()),
      ("dbt", TranslatorEngine()),
      ("sbt", StaticTranslatorEngine(translations: StaticTranslationSet(file))),
    ]
  }

  @Test(arguments: [true, false])
  func selfModifyingAndComputedJumpGuestRunsAlikeEverywhere(selfModifying: Bool) throws {
    let guest =
      selfModifying ? StaticTestGuest.selfModifyingComputedJump : StaticTestGuest.computedJumpOnly
    var runs: [String: StaticTestGuest.Run] = [:]
    for (name, engine) in try Self.engines(for: guest) {
      runs[name] = try StaticTestGuest.run(guest, on: engine)
    }
    let expected = selfModifying ? "AZC\n" : "AYC\n"
    for (name, run) in runs {
      #expect(run.output == expected, "\(name)")
      #expect(run.status == (selfModifying ? 121 : 119), "\(name)")
    }
    let sbt = try #require(runs["sbt"])
    // The loop's blocks came from the file: its 1000 rounds of CALL, ADD, RET, DEC, JNZ ran there
    // (4999 of the 5000 in the self-modifying run: one instruction of the first round ran in a
    // block translated at run time; which one was not traced).
    // The page's blocks went in together with the first one looked up (link time).
    #expect((sbt.counters["sbt-blocks-found"] ?? 0) >= 1)
    #expect((sbt.counters["sbt-blocks-installed"] ?? 0) >= 3)
    let staticShare = sbt.counters["sbt-static-instructions"] ?? 0
    #expect(staticShare >= 4999)
    #expect(
      staticShare + (sbt.counters["sbt-dynamic-instructions"] ?? 0) == sbt.counters["dbt-translated-instructions"])
    #expect((sbt.counters["sbt-pages-matched"] ?? 0) >= 1)
    // The computed jump's target was not covered: translated at run time.
    #expect((sbt.counters["sbt-blocks-not-covered"] ?? 0) >= 1)
    if selfModifying {
      // The guest's stores changed the page: its hash no longer matches, and the file's blocks on
      // it (f, called again after its patch) are not used again.
      #expect((sbt.counters["sbt-pages-rejected"] ?? 0) >= 1)
    } else {
      #expect(sbt.counters["sbt-pages-rejected"] == 0)
    }
  }

  @Test func flat32CodeRunsFromTheFile() throws {
    let report = try StaticTestGuest.translation(of: StaticTestGuest.flat32Loop, mode: .protected32)
    #expect(report.mode == .flat32Unpaged && report.blocksSkipped == 0)
    let engines: [(String, any Engine)] = [
      ("interp", InterpreterEngine()), ("dbt", TranslatorEngine()),
      ("sbt", StaticTranslatorEngine(translations: StaticTranslationSet(report.file))),
    ]
    for (name, engine) in engines {
      let run = try StaticTestGuest.run(StaticTestGuest.flat32Loop, on: engine, flatMode: .protected32)
      #expect(run.output == "A" && run.status == 113, "\(name): \(run.output) \(run.status)")
      if name == "sbt" { #expect((run.counters["sbt-static-instructions"] ?? 0) >= 4999) }
    }
  }

  @Test func aFileForOtherCodeIsNeverUsed() throws {
    // A translation of the unmodified guest run on a guest whose page differs (one byte of
    // data): every page is rejected, every block translated at run time, output unchanged.
    let file = try StaticTestGuest.translation(of: StaticTestGuest.computedJumpOnly).file
    var other = StaticTestGuest.computedJumpOnly
    other[0x38] = 0xEE  // data between the computed jump and its target
    let run = try StaticTestGuest.run(other, on: StaticTranslatorEngine(translations: StaticTranslationSet(file)))
    #expect(run.output == "AYC\n" && run.status == 119)
    #expect(run.counters["sbt-blocks-found"] == 0)
    #expect((run.counters["sbt-pages-rejected"] ?? 0) >= 1)
  }
}
