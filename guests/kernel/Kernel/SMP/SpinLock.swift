/// A ticket spin lock: each CPU takes the next ticket with one locked add and spins (PAUSE) until
/// the lock serves it, so waiters get the lock in arrival order. Kernel code runs with interrupts
/// off (except while idling), so a holder is never interrupted and an interrupt handler may take a
/// lock its CPU cannot be holding. Never held across `switch_context` or a TLB shootdown wait.
struct TicketLock {
  private let nextTicket: AtomicWord
  private let nowServing: AtomicWord
  /// PAUSE iterations spent waiting, over all acquisitions (contention, for the benchmarks).
  let spins: AtomicWord

  init() {
    nextTicket = AtomicWord()
    nowServing = AtomicWord()
    spins = AtomicWord()
  }

  /// A lock in three zeroed words the caller owns (the heap's own lock cannot come from the heap).
  init(storage: UnsafeMutablePointer<UInt64>) {
    nextTicket = AtomicWord(at: storage)
    nowServing = AtomicWord(at: storage + 1)
    spins = AtomicWord(at: storage + 2)
  }

  func acquire() {
    let ticket = nextTicket.add(1)
    var waited: UInt64 = 0
    while nowServing.load() != ticket {
      Platform.spinWaitHint()
      waited += 1
    }
    if waited > 0 { spins.add(waited) }
  }

  /// Takes the lock only when it is free at once.
  func tryAcquire() -> Bool {
    let serving = nowServing.load()
    return nextTicket.compareExchange(expected: serving, desired: serving + 1)
  }

  func release() {
    nowServing.store(nowServing.load() + 1)  // only the holder writes nowServing
  }

  var isHeld: Bool { nextTicket.load() != nowServing.load() }

  func withLock<R>(_ body: () -> R) -> R {
    acquire()
    let result = body()
    release()
    return result
  }
}
