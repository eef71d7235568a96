import Testing

@testable import VMM

@Suite struct OutputWatcherTests {
  @Test func findsTextInOneChunkAndReportsItOnce() {
    var w = OutputWatcher(text: "No bootable device")
    let early = w.feed(Array("Booting from Floppy...\r\n".utf8))
    let hit = w.feed(Array("No bootable device.  Retrying".utf8))
    let again = w.feed(Array("No bootable device".utf8))
    let end = w.feed(Array(" in 60 seconds.\r\n".utf8))
    #expect(early == .searching)
    #expect(hit == .inMatchedLine)
    #expect(w.matched)
    #expect(again == .inMatchedLine)
    #expect(end == .lineEnded)
  }

  @Test func findsTextSplitAcrossOneByteChunks() {
    var w = OutputWatcher(text: "abcab")
    var hits: [Int] = []
    for (i, b) in Array("xxabcaabcabyy".utf8).enumerated() where !w.matched {
      if w.feed([b]) != .searching { hits.append(i) }
    }
    #expect(hits == [10])
  }

  @Test func emptyTextNeverMatches() {
    var w = OutputWatcher(text: "")
    let hit = w.feed(Array("anything\n".utf8))
    #expect(hit == .searching)
    #expect(!w.matched)
  }

  @Test func interleavedStreamsNeedOneWatcherEach() {
    // Two streams written character by character (SeaBIOS's debug port, then COM1): the merged
    // bytes never hold the text, each stream on its own does (why the VM watches them apart).
    var merged = OutputWatcher(text: "SeaBIOS")
    var alone = OutputWatcher(text: "SeaBIOS")
    for b in Array("SeaBIOS".utf8) {
      _ = merged.feed([b, b])
      _ = alone.feed([b])
    }
    #expect(!merged.matched)
    #expect(alone.matched)
  }

  @Test func theLineEndsInTheChunkThatHoldsTheTextOrLater() {
    var sameChunk = OutputWatcher(text: "ready")
    #expect(sameChunk.feed(Array("system ready.\nmore".utf8)) == .lineEnded)
    // A newline before the text does not end its line.
    var before = OutputWatcher(text: "ready")
    #expect(before.feed(Array("boot\nsystem ready".utf8)) == .inMatchedLine)
    // The text split across chunks, then the newline byte alone.
    var split = OutputWatcher(text: "ready")
    #expect(split.feed(Array("rea".utf8)) == .searching)
    #expect(split.feed(Array("dy".utf8)) == .inMatchedLine)
    #expect(split.feed([0x0A]) == .lineEnded)
  }

  /// A guest clock that only moves when told to.
  final class ManualClock: GuestClock {
    var nanoseconds: UInt64 = 1_000
  }

  @Test func theRunStopsWhenEveryStreamThatShowedTheTextHasEndedItsLine() {
    // SeaBIOS's order: each character to the debug console, then to COM1.
    let clock = ManualClock()
    let stop = OutputStop(text: "No bootable device", clock: clock)
    let debug = stop.addStream()
    let serial = stop.addStream()
    var debugWatcher = OutputWatcher(text: stop.text)
    var serialWatcher = OutputWatcher(text: stop.text)
    var stoppedAfter: String?
    let line = "No bootable device.  Retrying in 60 seconds.\n"
    var serialSoFar = ""
    for c in line.utf8 {
      stop.update(stream: debug, debugWatcher.feed([c]))
      if stoppedAfter == nil, let t = stop.deadline, t <= clock.nanoseconds { stoppedAfter = serialSoFar }
      stop.update(stream: serial, serialWatcher.feed([c]))
      serialSoFar.append(Character(UnicodeScalar(c)))
      if stoppedAfter == nil, let t = stop.deadline, t <= clock.nanoseconds { stoppedAfter = serialSoFar }
      clock.nanoseconds += 10
    }
    // Not when the debug console ended the line (COM1 was one character behind), but with COM1's
    // newline: the whole line on both, whatever the host's speed.
    #expect(stoppedAfter == line)
  }

  @Test func aLineThatNeverEndsStopsAfterTheGraceTime() {
    let clock = ManualClock()
    let stop = OutputStop(text: "login:", clock: clock)
    let s = stop.addStream()
    var w = OutputWatcher(text: stop.text)
    stop.update(stream: s, w.feed(Array("debian login: ".utf8)))
    #expect(stop.deadline == 1_000 + OutputStop.grace)
  }
}
