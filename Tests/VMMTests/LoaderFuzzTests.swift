import Testing

@testable import VMM

/// Feeds thousands of mutated and random images to `ImageLoader`: each must either load or throw a
/// one-line `LoaderError`, never crash (a trap would kill the test process).
@Suite struct LoaderFuzzTests {
  static let seeds: [[UInt8]] = [
    TestImages.elf(
      entry: 0x10_0000,
      segments: [
        .init(at: 0x10_0000, data: [0xF4, 0x90, 0x90, 0x90]), .init(at: 0x20_0000, data: [1, 2], memorySize: 0x4000),
      ]),
    TestImages.multibootELF(),
    TestImages.multibootKludge(),
    TestImages.bzImage(kernel: [UInt8](repeating: 0x90, count: 256), initSize: 0x1000, prefAddress: 0x20_0000),
  ]

  static func mutate(_ image: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
    var out = image
    let mutations = Int.random(in: 1...6, using: &rng)
    for _ in 0..<mutations {
      guard !out.isEmpty else { break }
      // Bias towards the headers, where the interesting fields are.
      let limit = Bool.random(using: &rng) ? min(out.count, 0x300) : out.count
      let at = Int.random(in: 0..<limit, using: &rng)
      switch Int.random(in: 0..<7, using: &rng) {
      case 0: out[at] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
      case 1: out[at] = UInt8.random(in: 0...255, using: &rng)
      case 2, 3:
        let width = [2, 4, 8].randomElement(using: &rng)!
        let interesting: [UInt64] = [
          0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x1_0000, 0x7FFF_FFFF, 0xFFFF_FFFF, .max, .max - 7,
        ]
        let value = Bool.random(using: &rng) ? interesting.randomElement(using: &rng)! : rng.next()
        for i in 0..<width where at + i < out.count { out[at + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
      case 4: out.removeLast(Int.random(in: 0...out.count, using: &rng))
      case 5: out += (0..<Int.random(in: 1...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
      default:
        let n = Int.random(in: 1...16, using: &rng)
        out.removeSubrange(at..<min(out.count, at + n))
      }
    }
    return out
  }

  @Test func mutatedImagesNeverCrash() throws {
    let memory = try GuestMemory(ramSize: 64 << 20)
    var rng = SplitMix64(seed: 0x7269_7669_736F_72)
    var loaded = 0
    var refused = 0
    for i in 0..<4000 {
      let seed = Self.seeds[i % Self.seeds.count]
      let image = Self.mutate(seed, &rng)
      var options = LoadOptions()
      if i % 5 == 0 { options.commandLine = "console=ttyS0" }
      if i % 7 == 0 { options.initrd = [UInt8](repeating: 0x11, count: Int.random(in: 1...5000, using: &rng)) }
      _ = ImageLoader.detectFormat(image, options: options)
      do {
        let boot = try ImageLoader.load(image: image, into: memory, options: options)
        #expect(boot.registers.rflags & 2 == 2)
        loaded += 1
      } catch {
        #expect(!error.message.isEmpty && !error.message.contains("\n"))
        refused += 1
      }
    }
    // Both outcomes must be exercised, or the mutations are too weak or too strong.
    #expect(loaded > 100)
    #expect(refused > 100)
  }

  @Test func randomBytesAndFlatOptionsNeverCrash() throws {
    let memory = try GuestMemory(ramSize: 8 << 20)
    var rng = SplitMix64(seed: 42)
    for i in 0..<1000 {
      var image = (0..<Int.random(in: 0...600, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
      if i % 3 == 0 && image.count >= 4 { image[0...3] = [0x7F, 0x45, 0x4C, 0x46] }
      if i % 3 == 1 && image.count >= 0x206 {
        image[0x1FE] = 0x55
        image[0x1FF] = 0xAA
        image[0x202...0x205] = [0x48, 0x64, 0x72, 0x53]
      }
      var options = LoadOptions()
      if i % 4 == 0 {
        options.flatAddress = [0, 0x500, 0x7C00, 0x10_0000, 0x7F_FFFF, UInt64.max - 1, 0xFFFF_F000]
          .randomElement(using: &rng)!
        options.flatEntry = Bool.random(using: &rng) ? nil : rng.next() >> Int.random(in: 0...63, using: &rng)
        options.flatMode = [BootState.Mode.real, .protected32, .long64].randomElement(using: &rng)!
      }
      do {
        _ = try ImageLoader.load(image: image, into: memory, options: options)
      } catch {
        #expect(!error.message.isEmpty && !error.message.contains("\n"))
      }
    }
  }
}
