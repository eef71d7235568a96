/// A proportional-share scheduler for the vCPUs of several VMs on a set of physical CPUs, after
/// Xen's credit scheduler: each VM has a weight and an optional cap; every accounting period the
/// machine's capacity is handed out as credit (nanoseconds of CPU) to the VMs that want CPU, in
/// proportion to their weights and within their caps, and split among their active vCPUs; credit is
/// debited as vCPUs run. A runnable vCPU with credit is UNDER, without it OVER; a vCPU woken with
/// credit is BOOSTed and may preempt a running vCPU once that one has run the rate limit. Each
/// pCPU has its own run queue (highest priority first, FIFO within a priority); a pCPU with
/// nothing better than OVER work steals from other queues, respecting hard affinity and preferring
/// vCPUs whose soft affinity names it. Blocked vCPUs take no pCPU.
///
/// Refinements over credit1, so that shares hold at any time scale: an UNDER vCPU's slice ends
/// when its credit runs out, and a capped VM's slice ends when its cap for the period is used.
///
/// The policy is a state machine with no threads and no clock of its own: the driver passes the
/// time to every call. `SchedulerSimulation` drives it in virtual time (unit tests); the VMM's
/// vCPU threads drive the same code with host time. Not thread-safe: the driver serializes calls.
public final class CreditScheduler {
  /// How many physical CPUs the scheduler hands out.
  public let pcpuCount: Int
  /// Slice, rate limit and accounting period.
  public let parameters: SchedulerParameters
  /// The host's NUMA nodes: groups of pCPUs (one group of all pCPUs on a single-node host).
  public let nodes: [[Int]]
  /// The node of each pCPU.
  private let nodeOf: [Int]
  /// Every state change and decision, as it happens (nil: nobody listens).
  public var observer: ((SchedulerEvent) -> Void)?

  private struct Entry {
    let id: VCPUID
    var state: VCPURunState = .blocked
    var credit: Int64 = 0
    var priority: SchedulingPriority = .over
    var hardAffinity: [Int]
    var softAffinity: [Int]
    var lastPCPU: Int
    /// The pCPU whose run queue holds it (runnable vCPUs only).
    var queue: Int?
    /// FIFO order within a priority.
    var sequence: UInt64 = 0
    /// Ran or wanted to run since the last accounting.
    var active = false
    /// Descheduled while it still wanted to run (slice over, preempted), not by its own yield:
    /// what a directed yield looks for, a likely lock holder (KVM's `preempted`).
    var preempted = false
    /// Yielded because it spun and not dispatched since: a known waiter, which a directed yield
    /// passes over and, for a time slice after `yieldedAt`, a pick takes after the others of its
    /// priority.
    var spinYielded = false
    /// When it last yielded because it spun.
    var yieldedAt: UInt64 = 0
    /// CPU time run in all (relaxed co-scheduling's progress; a woken vCPU catches up).
    var progress: UInt64 = 0
  }

  private var shares: [VMShare] = []
  private var entries: [Entry] = []
  private var index: [VCPUID: Int] = [:]
  private var vcpuCounts: [Int] = []
  /// Per VM: its vCPUs' entries.
  private var members: [[Int]] = []
  /// Per VM: the vCPU index of the last directed yield's target (round robin, as KVM's
  /// `last_boosted_vcpu`).
  private var lastDirectedTarget: [Int] = []
  private var runQueues: [[Int]]
  private var running: [Int?]
  /// Per VM: CPU time used since the last accounting (for caps).
  private var consumed: [UInt64] = []
  private var nextSequence: UInt64 = 0
  /// Per pCPU: when it should pick again because a woken vCPU may preempt it (nil: no request).
  public private(set) var preemptionDue: [UInt64?]
  /// Per pCPU: the vCPU that yielded it (`yield`), until the pCPU picks again.
  private var yielder: [Int?]

  /// A scheduler over `pcpus` physical CPUs (at least one).
  public init(pcpus: Int, nodes: [[Int]]? = nil, parameters: SchedulerParameters = SchedulerParameters()) {
    pcpuCount = max(1, pcpus)
    self.parameters = parameters
    // Host NUMA nodes: every pCPU in exactly one, else one node of all.
    let all = Array(0..<max(1, pcpus))
    if let nodes, !nodes.isEmpty, nodes.allSatisfy({ !$0.isEmpty }), nodes.flatMap({ $0 }).sorted() == all {
      self.nodes = nodes.map { $0.sorted() }
    } else {
      self.nodes = [all]
    }
    var nodeOf = Array(repeating: 0, count: all.count)
    for (n, group) in self.nodes.enumerated() { for p in group { nodeOf[p] = n } }
    self.nodeOf = nodeOf
    runQueues = Array(repeating: [], count: max(1, pcpus))
    running = Array(repeating: nil, count: max(1, pcpus))
    preemptionDue = Array(repeating: nil, count: max(1, pcpus))
    yielder = Array(repeating: nil, count: max(1, pcpus))
  }

  // MARK: Configuration

  /// Adds a VM with `share`; returns its index.
  @discardableResult
  public func addVM(_ share: VMShare = VMShare()) -> Int {
    shares.append(share)
    consumed.append(0)
    vcpuCounts.append(0)
    members.append([])
    lastDirectedTarget.append(-1)
    return shares.count - 1
  }

  /// Adds a vCPU to VM `vm`, blocked until woken. `hardAffinity`: the pCPUs it may ever run on
  /// (nil or no valid pCPU: all); `softAffinity`: the ones it prefers; `node`: the host node its
  /// virtual NUMA node maps to, which becomes its soft affinity when none is given (the
  /// scheduler then keeps it on that node's pCPUs while they can take it, as Xen's node affinity
  /// does). Returns its name, or nil for an unknown VM.
  @discardableResult
  public func addVCPU(vm: Int, hardAffinity: Set<Int>? = nil, softAffinity: Set<Int>? = nil, node: Int? = nil)
    -> VCPUID?
  {
    guard shares.indices.contains(vm) else { return nil }
    let softAffinity = softAffinity ?? node.flatMap { nodes.indices.contains($0) ? Set(nodes[$0]) : nil }
    let all = Array(0..<pcpuCount)
    let hard = hardAffinity.map { $0.filter { (0..<pcpuCount).contains($0) }.sorted() } ?? all
    let allowed = hard.isEmpty ? all : hard
    let soft = (softAffinity ?? []).filter { allowed.contains($0) }.sorted()
    let id = VCPUID(vm: vm, vcpu: vcpuCounts[vm])
    vcpuCounts[vm] += 1
    // Spread a VM's vCPUs over their allowed pCPUs to start with.
    let home = (soft.isEmpty ? allowed : soft)[(entries.count) % (soft.isEmpty ? allowed.count : soft.count)]
    index[id] = entries.count
    members[vm].append(entries.count)
    entries.append(Entry(id: id, hardAffinity: allowed, softAffinity: soft, lastPCPU: home))
    return id
  }

  /// The vCPUs, in the order they were added.
  public var vcpus: [VCPUID] { entries.map(\.id) }

  /// `vcpu`'s state now.
  public func state(of vcpu: VCPUID) -> VCPURunState? { index[vcpu].map { entries[$0].state } }

  /// `vcpu`'s priority now.
  public func priority(of vcpu: VCPUID) -> SchedulingPriority? { index[vcpu].map { entries[$0].priority } }

  /// `vcpu`'s credit now, in nanoseconds (negative: it ran beyond its share).
  public func credit(of vcpu: VCPUID) -> Int64? { index[vcpu].map { entries[$0].credit } }

  /// The vCPU running on `pcpu`, if any.
  public func runningVCPU(on pcpu: Int) -> VCPUID? {
    guard running.indices.contains(pcpu) else { return nil }
    return running[pcpu].map { entries[$0].id }
  }

  /// The hard affinity of `vcpu`, sorted.
  public func hardAffinity(of vcpu: VCPUID) -> [Int] { index[vcpu].map { entries[$0].hardAffinity } ?? [] }

  /// `vcpu`'s progress at `now` for relaxed co-scheduling: the CPU time it has run (a vCPU woken
  /// from idle starts level with its slowest runnable sibling).
  public func progress(of vcpu: VCPUID, at now: UInt64) -> UInt64? { index[vcpu].map { progress($0, at: now) } }

  /// Whether relaxed co-scheduling holds `vcpu` back at `now`: it is ahead of its slowest runnable
  /// sibling by more than `SchedulerParameters.coScheduleSkew`.
  public func isCoStopped(_ vcpu: VCPUID, at now: UInt64) -> Bool {
    index[vcpu].map { coStopped($0, at: now) } ?? false
  }

  // MARK: Events

  /// `vcpu` wants a pCPU (an interrupt or event woke it). A vCPU with credit is BOOSTed; an idle
  /// pCPU it may use, or one running lower-priority work, gets a preemption request
  /// (`preemptionDue`), no earlier than the rate limit allows.
  public func wake(_ vcpu: VCPUID, at now: UInt64) {
    guard let i = index[vcpu], entries[i].state == .blocked else { return }
    // An idle vCPU did not fall behind: it starts level with its slowest runnable sibling.
    if let slowest = slowestSibling(of: i, at: now) { entries[i].progress = max(entries[i].progress, slowest) }
    entries[i].state = .runnable
    entries[i].active = true
    entries[i].preempted = false
    if entries[i].credit > 0 { setPriority(i, .boost, at: now) }
    observer?(.woke(vcpu, time: now))
    let queue = placement(for: i)
    enqueue(i, on: queue)
    tickle(for: i, at: now)
    coScheduleRequests(vm: vcpu.vm, at: now)
  }

  /// The running (or runnable) `vcpu` blocks (HLT, `sched_op` block): it leaves its pCPU, which
  /// the driver then schedules again.
  public func block(_ vcpu: VCPUID, at now: UInt64) {
    guard let i = index[vcpu] else { return }
    switch entries[i].state {
    case .running(let p, let since):
      charge(i, from: since, to: now)
      running[p] = nil
      observer?(.descheduled(vcpu, pcpu: p, time: now))
    case .runnable:
      dequeue(i)
    case .blocked, .parked:
      break
    }
    entries[i].state = .blocked
    entries[i].preempted = false
    entries[i].spinYielded = false
    observer?(.blocked(vcpu, time: now))
    if entries[i].priority == .boost { setPriority(i, entries[i].credit > 0 ? .under : .over, at: now) }
  }

  /// The running `vcpu` gives up its pCPU because it spins (the VMM saw a PAUSE loop, as
  /// pause-loop exiting does): the pCPU should pick again at once (`preemptionDue`), and then
  /// goes to a sibling of the same VM that was preempted while runnable — most likely the lock
  /// holder, or the waiter whose turn it is, that the spinner waits for (a directed yield, as
  /// KVM's `kvm_vcpu_on_spin`: round robin over the VM's vCPUs, passing over blocked ones and
  /// known spinners) — else to anyone else. The yielder is marked a spinner: it is not a directed
  /// yield's target, and picks take it after the others of its priority until it runs again (a
  /// slice at most).
  /// Returns that pCPU.
  @discardableResult
  public func yield(_ vcpu: VCPUID, at now: UInt64) -> Int? {
    guard let i = index[vcpu], case .running(let p, _) = entries[i].state else { return nil }
    entries[i].spinYielded = true
    entries[i].yieldedAt = now
    yielder[p] = i
    preemptionDue[p] = now
    return p
  }

  /// What pCPU `pcpu` runs next, from `now` until the returned time at the latest (its slice, the
  /// end of its credit, or of its VM's cap); nil vCPU: the pCPU idles until something wakes.
  /// Call when the slice ends, the running vCPU blocked, or `preemptionDue` arrives.
  public func schedule(_ pcpu: Int, at now: UInt64) -> (vcpu: VCPUID?, until: UInt64) {
    guard running.indices.contains(pcpu) else { return (nil, now) }
    preemptionDue[pcpu] = nil
    if let current = running[pcpu], case .running(_, let since) = entries[current].state {
      charge(current, from: since, to: now)
      running[pcpu] = nil
      observer?(.descheduled(entries[current].id, pcpu: pcpu, time: now))
      if entries[current].priority == .boost {
        setPriority(current, entries[current].credit > 0 ? .under : .over, at: now)
      }
      if isOverCap(entries[current].id.vm) {
        entries[current].state = .parked
        observer?(.parked(entries[current].id, time: now))
      } else {
        entries[current].state = .runnable
        entries[current].preempted = !entries[current].spinYielded
        enqueue(current, on: pcpu)
      }
    }
    let yielded = yielder[pcpu]
    yielder[pcpu] = nil
    let target = directedYield(from: yielded, on: pcpu, at: now)
    guard let next = target ?? pick(for: pcpu, at: now, excluding: yielded) else {
      // Idle (with co-scheduling: until a held-back vCPU it may run is let go).
      for vm in members.indices { coScheduleRequests(vm: vm, at: now) }
      return (nil, .max)
    }
    dequeue(next)
    entries[next].state = .running(pcpu: pcpu, since: now)
    entries[next].lastPCPU = pcpu
    entries[next].preempted = false
    entries[next].spinYielded = false
    running[pcpu] = next
    observer?(.dispatched(entries[next].id, pcpu: pcpu, time: now))
    var until = now &+ parameters.timeslice
    if entries[next].priority >= .under && entries[next].credit > 0 {
      until = min(until, now &+ UInt64(entries[next].credit))
    }
    // A directed yield lends the pCPU only for the rate limit: long enough for a preempted lock
    // holder to release its lock, too short to take its VM beyond its share.
    if target != nil { until = min(until, now &+ max(parameters.rateLimit, 1)) }
    if let budget = capBudget(entries[next].id.vm) {
      let left = budget > consumed[entries[next].id.vm] ? budget - consumed[entries[next].id.vm] : 0
      until = min(until, now &+ max(left, 1))
    }
    // Others are waiting and a pCPU idles: let it steal.
    for p in 0..<pcpuCount where running[p] == nil && p != pcpu && preemptionDue[p] == nil {
      if runQueues.contains(where: { queue in
        queue.contains { entries[$0].hardAffinity.contains(p) && !coStopped($0, at: now) }
      }) {
        preemptionDue[p] = now
      }
    }
    for vm in members.indices { coScheduleRequests(vm: vm, at: now) }
    return (entries[next].id, until)
  }

  /// Hands out credit for the next accounting period (call every `accountingPeriod`): the running
  /// vCPUs are charged up to `now`, priorities follow the new credit, parked vCPUs of capped VMs
  /// become runnable again.
  public func account(at now: UInt64) {
    for p in 0..<pcpuCount {
      if let r = running[p], case .running(_, let since) = entries[r].state {
        charge(r, from: since, to: now)
        entries[r].state = .running(pcpu: p, since: now)
        entries[r].active = true
      }
    }
    let period = Int64(clamping: parameters.accountingPeriod)
    var activeVCPUs = Array(repeating: 0, count: shares.count)
    for e in entries where e.active || e.state != .blocked { activeVCPUs[e.id.vm] += 1 }
    let totalWeight = shares.indices.reduce(0) { $0 + (activeVCPUs[$1] > 0 ? shares[$1].weight : 0) }
    let capacity = period * Int64(pcpuCount)
    for i in entries.indices {
      let vm = entries[i].id.vm
      let isActive = entries[i].active || entries[i].state != .blocked
      if isActive && totalWeight > 0 {
        var vmCredit = capacity * Int64(shares[vm].weight) / Int64(totalWeight)
        if let cap = shares[vm].cap { vmCredit = min(vmCredit, period * Int64(cap) / 100) }
        let each = min(vmCredit / Int64(activeVCPUs[vm]), period)
        entries[i].credit = min(entries[i].credit + each, period)
      }
      entries[i].credit = max(entries[i].credit, -period)
      entries[i].active = false
      if entries[i].priority != .boost || entries[i].credit <= 0 {
        setPriority(i, entries[i].credit > 0 ? .under : .over, at: now)
      }
    }
    for vm in consumed.indices { consumed[vm] = 0 }
    for i in entries.indices where entries[i].state == .parked {
      entries[i].state = .runnable
      observer?(.woke(entries[i].id, time: now))
      enqueue(i, on: placement(for: i))
      tickle(for: i, at: now)
    }
  }

  // MARK: The policy's parts

  private func setPriority(_ i: Int, _ priority: SchedulingPriority, at now: UInt64) {
    guard entries[i].priority != priority else { return }
    entries[i].priority = priority
    observer?(.priorityChanged(entries[i].id, priority, time: now))
  }

  /// Debits the time `i` ran and adds it to its VM's use this period.
  private func charge(_ i: Int, from start: UInt64, to end: UInt64) {
    let ran = end > start ? end - start : 0
    entries[i].credit -= Int64(clamping: ran)
    entries[i].progress &+= ran
    consumed[entries[i].id.vm] &+= ran
    entries[i].active = true
    if entries[i].credit <= 0 && entries[i].priority == .under {
      entries[i].priority = .over
      observer?(.priorityChanged(entries[i].id, .over, time: end))
    }
  }

  /// The CPU time VM `vm` may use per accounting period, when capped.
  private func capBudget(_ vm: Int) -> UInt64? {
    shares[vm].cap.map { parameters.accountingPeriod * UInt64($0) / 100 }
  }

  private func isOverCap(_ vm: Int) -> Bool {
    guard let budget = capBudget(vm) else { return false }
    return consumed[vm] >= budget
  }

  /// The queue a runnable vCPU joins: an idle pCPU it may use (its last one first, then its soft
  /// affinity), else its last pCPU.
  private func placement(for i: Int) -> Int {
    let e = entries[i]
    let candidates = [e.lastPCPU] + e.softAffinity + e.hardAffinity
    for p in candidates where running[p] == nil && runQueues[p].isEmpty && e.hardAffinity.contains(p) { return p }
    return e.hardAffinity.contains(e.lastPCPU) ? e.lastPCPU : e.hardAffinity[0]
  }

  /// Asks a pCPU to pick again for the newly runnable `i`: an idle one at once, else the one
  /// running the lowest-priority work below `i`'s, once its vCPU has run the rate limit.
  private func tickle(for i: Int, at now: UInt64) {
    let e = entries[i]
    if let idle = e.hardAffinity.first(where: { running[$0] == nil }) {
      request(idle, at: now)
      return
    }
    var best: (pcpu: Int, priority: SchedulingPriority, due: UInt64)?
    for p in e.hardAffinity {
      guard let r = running[p], case .running(_, let since) = entries[r].state, entries[r].priority < e.priority
      else { continue }
      let due = max(now, since &+ parameters.rateLimit)
      if best == nil || entries[r].priority < best!.priority
        || (entries[r].priority == best!.priority && due < best!.due)
      {
        best = (p, entries[r].priority, due)
      }
    }
    if let best { request(best.pcpu, at: best.due) }
  }

  private func request(_ pcpu: Int, at time: UInt64) {
    preemptionDue[pcpu] = min(preemptionDue[pcpu] ?? .max, time)
  }

  private func enqueue(_ i: Int, on pcpu: Int) {
    nextSequence &+= 1
    entries[i].sequence = nextSequence
    entries[i].queue = pcpu
    runQueues[pcpu].append(i)
  }

  private func dequeue(_ i: Int) {
    guard let q = entries[i].queue else { return }
    runQueues[q].removeAll { $0 == i }
    entries[i].queue = nil
  }

  /// The best runnable vCPU for `pcpu`: its own queue's first of the highest priority, unless
  /// another queue holds better work `pcpu` may run (work stealing; soft affinity breaks ties).
  private func pick(for pcpu: Int, at now: UInt64, excluding yielded: Int? = nil) -> Int? {
    let coScheduling = parameters.coScheduleSkew != nil
    func better(_ a: Int, than b: Int?) -> Bool {
      guard let b else { return true }
      if entries[a].priority != entries[b].priority { return entries[a].priority > entries[b].priority }
      // Relaxed co-scheduling: a laggard holding its siblings back goes first.
      if coScheduling {
        let aLags = lags(a, at: now)
        if aLags != lags(b, at: now) { return aLags }
      }
      // A vCPU that yielded because it spun waits for the others (it waits for one of them), for
      // a slice at most.
      let aSpun = recentlyYielded(a, at: now)
      if aSpun != recentlyYielded(b, at: now) { return !aSpun }
      // Balance within the node first: work queued on this pCPU's node before work from others.
      let aNear = nodeOf[entries[a].queue ?? pcpu] == nodeOf[pcpu]
      let bNear = nodeOf[entries[b].queue ?? pcpu] == nodeOf[pcpu]
      if aNear != bNear { return aNear }
      let aSoft = entries[a].softAffinity.contains(pcpu)
      let bSoft = entries[b].softAffinity.contains(pcpu)
      if aSoft != bSoft { return aSoft }
      return entries[a].sequence < entries[b].sequence
    }
    func eligible(_ i: Int) -> Bool { !coScheduling || !coStopped(i, at: now) }
    var local: Int?
    for i in runQueues[pcpu] where i != yielded && eligible(i) && better(i, than: local) { local = i }
    if let local, entries[local].priority > .over, !coScheduling || lags(local, at: now) { return local }
    var stolen: Int?
    for q in 0..<pcpuCount where q != pcpu {
      for i in runQueues[q]
      where i != yielded && entries[i].hardAffinity.contains(pcpu) && eligible(i) && better(i, than: stolen) {
        stolen = i
      }
    }
    // With co-scheduling only a laggard is taken from another queue ahead of local work with
    // credit: it holds its siblings back.
    if coScheduling, let local, entries[local].priority > .over, let s = stolen, !lags(s, at: now) {
      stolen = nil
    }
    guard let stolen, better(stolen, than: local) else {
      // Nobody else: the yielder after all.
      if local == nil, let yielded, runQueues[pcpu].contains(yielded), eligible(yielded) { return yielded }
      return local
    }
    let from = entries[stolen].queue ?? pcpu
    observer?(.migrated(entries[stolen].id, from: from, to: pcpu, time: now))
    return stolen
  }

  /// A directed yield's target: a sibling (same VM) of `yielder` that `pcpu` may run and that was
  /// preempted while runnable — not blocked, not itself a spinner, not held back by
  /// co-scheduling — taken round robin from the one after the VM's last target (as KVM's
  /// `kvm_vcpu_on_spin`), so that successive yields reach every preempted sibling: the lock
  /// holder, or for a ticket lock the waiter whose turn it is. It runs whatever its priority, but
  /// only for the rate limit (`schedule`). Nil when no sibling qualifies.
  private func directedYield(from yielder: Int?, on pcpu: Int, at now: UInt64) -> Int? {
    guard let yielder else { return nil }
    let vm = entries[yielder].id.vm
    let count = max(vcpuCounts[vm], 1)
    var best: (entry: Int, distance: Int)?
    for i in members[vm] where i != yielder {
      let e = entries[i]
      guard e.state == .runnable, e.preempted, !e.spinYielded, e.hardAffinity.contains(pcpu), !coStopped(i, at: now)
      else { continue }
      let distance = ((e.id.vcpu - lastDirectedTarget[vm] - 1) % count + count) % count
      if best == nil || distance < best!.distance { best = (i, distance) }
    }
    guard let best else { return nil }
    lastDirectedTarget[vm] = entries[best.entry].id.vcpu
    if let from = entries[best.entry].queue, from != pcpu {
      observer?(.migrated(entries[best.entry].id, from: from, to: pcpu, time: now))
    }
    return best.entry
  }

  /// `i` yielded because it spun, has not run since, and did so less than a slice ago.
  private func recentlyYielded(_ i: Int, at now: UInt64) -> Bool {
    entries[i].spinYielded && now &- entries[i].yieldedAt < parameters.timeslice
  }

  // MARK: Relaxed co-scheduling

  /// `i`'s progress at `now`: what it has been charged, plus its current run.
  private func progress(_ i: Int, at now: UInt64) -> UInt64 {
    if case .running(_, let since) = entries[i].state, now > since { return entries[i].progress &+ (now - since) }
    return entries[i].progress
  }

  /// Whether `i` wants CPU (runnable or running): the siblings co-scheduling compares with.
  private func wantsCPU(_ i: Int) -> Bool {
    switch entries[i].state {
    case .runnable, .running: return true
    case .blocked, .parked: return false
    }
  }

  /// The least progress among `i`'s siblings that want CPU, if any.
  private func slowestSibling(of i: Int, at now: UInt64) -> UInt64? {
    var slowest: UInt64?
    for j in members[entries[i].id.vm] where j != i && wantsCPU(j) {
      let p = progress(j, at: now)
      slowest = min(slowest ?? p, p)
    }
    return slowest
  }

  /// Relaxed co-scheduling holds `i` back: it is ahead of its slowest sibling that wants CPU by
  /// more than the skew allowed.
  private func coStopped(_ i: Int, at now: UInt64) -> Bool {
    guard let skew = parameters.coScheduleSkew, let slowest = slowestSibling(of: i, at: now) else { return false }
    return progress(i, at: now) > slowest &+ skew
  }

  /// `i` holds a sibling back (relaxed co-scheduling): it should run first.
  private func lags(_ i: Int, at now: UInt64) -> Bool {
    guard let skew = parameters.coScheduleSkew else { return false }
    let mine = progress(i, at: now)
    return members[entries[i].id.vm].contains { j in j != i && wantsCPU(j) && progress(j, at: now) > mine &+ skew }
  }

  /// Relaxed co-scheduling's preemption requests for VM `vm`: a running vCPU is asked to stop
  /// when it will be ahead of its slowest waiting sibling by more than the skew (`preemptionDue`,
  /// carried out at its next check), and an idle pCPU is asked to pick again when a held-back
  /// vCPU it may run will be let go because the slowest sibling runs.
  private func coScheduleRequests(vm: Int, at now: UInt64) {
    guard let skew = parameters.coScheduleSkew, members.indices.contains(vm), members[vm].count > 1 else { return }
    var waitingSlowest: UInt64?
    for j in members[vm] where entries[j].state == .runnable {
      waitingSlowest = min(waitingSlowest ?? entries[j].progress, entries[j].progress)
    }
    for i in members[vm] {
      switch entries[i].state {
      case .running(let p, _):
        guard let waitingSlowest else { continue }
        // Co-stopped once more than the skew ahead: one nanosecond past the limit.
        let mine = progress(i, at: now)
        let limit = waitingSlowest &+ skew
        request(p, at: mine > limit ? now : now &+ (limit - mine) &+ 1)
      case .runnable:
        // Held back: let go once the slowest sibling, if it runs, has caught up to within the skew.
        guard let slowest = slowestSibling(of: i, at: now) else { continue }
        let mine = entries[i].progress
        guard mine > slowest &+ skew else { continue }
        let laggardRuns = members[vm].contains { j in
          if j != i, case .running = entries[j].state { return progress(j, at: now) == slowest }
          return false
        }
        guard laggardRuns else { continue }
        let due = now &+ (mine - skew - slowest)  // when the slowest is within the skew
        for p in entries[i].hardAffinity where running[p] == nil { request(p, at: due) }
      case .blocked, .parked:
        continue
      }
    }
  }
}
