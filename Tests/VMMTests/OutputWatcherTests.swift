import Testing

@testable import VMM

@Suite struct OutputWatcherTests {
  @Test func findsTextInOneChunkAndReportsItOnce() {
    var w = OutputWatcher(text: "No bootable device")
    let early = w.feed(Array("Booting from Floppy...\r\n".utf8))
    let hit = w.feed(Array("No bootable device.  Retrying".utf8))
    let again = w.feed(Array("No bootable device".utf8))
    #expect(!early)
    #expect(hit)
    #expect(w.matched)
    #expect(!again)
  }

  @Test func findsTextSplitAcrossOneByteChunks() {
    var w = OutputWatcher(text: "abcab")
    var hits: [Int] = []
    for (i, b) in Array("xxabcaabcabyy".utf8).enumerated() where w.feed([b]) { hits.append(i) }
    #expect(hits == [10])
  }

  @Test func emptyTextNeverMatches() {
    var w = OutputWatcher(text: "")
    let hit = w.feed(Array("anything".utf8))
    #expect(!hit)
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
}
