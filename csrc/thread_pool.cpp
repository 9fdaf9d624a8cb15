#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <thread>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace fcnnzoo {
namespace {

std::atomic<ThreadPool*> g_pool{nullptr};

#if defined(__unix__) || defined(__APPLE__)
// The child of fork() contains a copy of the pool whose threads do not exist,
// so waiting on them would hang. Dropping the pointer leaks that copy on purpose:
// it cannot be destroyed safely, because its mutex may have been locked by a
// parent thread at the moment of the fork.
void forget_pool_in_child() { g_pool.store(nullptr, std::memory_order_relaxed); }
#endif

}  // namespace

ThreadPool& ThreadPool::instance() {
#if defined(__unix__) || defined(__APPLE__)
  static const int fork_handler_status = pthread_atfork(nullptr, nullptr, forget_pool_in_child);
  (void)fork_handler_status;
#endif

  ThreadPool* pool = g_pool.load(std::memory_order_acquire);
  if (pool != nullptr) {
    return *pool;
  }

  // The pool is never destroyed: its threads sleep until the process exits,
  // which avoids joining them during interpreter shutdown.
  ThreadPool* created = new ThreadPool();
  if (g_pool.compare_exchange_strong(pool, created, std::memory_order_acq_rel)) {
    return *created;
  }
  delete created;
  return *pool;
}

int ThreadPool::grow(int thread_count) {
  std::lock_guard<std::mutex> lock(mutex_);
  while (static_cast<int>(threads_.size()) < thread_count) {
    const int worker = static_cast<int>(threads_.size()) + 1;
    try {
      threads_.emplace_back(&ThreadPool::worker_loop, this, worker, generation_);
    } catch (const std::system_error&) {
      break;
    }
  }
  return static_cast<int>(threads_.size());
}

void ThreadPool::worker_loop(int worker, uint64_t seen_generation) {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    start_condition_.wait(lock, [&] { return generation_ != seen_generation; });
    seen_generation = generation_;
    if (worker >= participants_) {
      continue;
    }

    lock.unlock();
    process_chunks(worker);
    lock.lock();

    pending_workers_ -= 1;
    if (pending_workers_ == 0) {
      done_condition_.notify_one();
    }
  }
}

void ThreadPool::process_chunks(int worker) {
  for (;;) {
    const int64_t begin = next_task_.fetch_add(chunk_size_, std::memory_order_relaxed);
    if (begin >= task_count_) {
      return;
    }
    const int64_t end = std::min(begin + chunk_size_, task_count_);
    function_(context_, begin, end, worker);
  }
}

void ThreadPool::run(int thread_count, int64_t task_count, int64_t chunk_size, TaskRangeFunction function,
                     void* context) {
  if (task_count <= 0) {
    return;
  }
  chunk_size = std::max<int64_t>(chunk_size, 1);
  const int64_t chunk_count = (task_count + chunk_size - 1) / chunk_size;
  int participants = std::min(std::max(thread_count, 1), kMaxThreads);
  participants = static_cast<int>(std::min<int64_t>(participants, chunk_count));

  if (participants <= 1 || busy_.exchange(true, std::memory_order_acquire)) {
    function(context, 0, task_count, 0);
    return;
  }

  participants = std::min(participants, grow(participants - 1) + 1);
  if (participants <= 1) {
    busy_.store(false, std::memory_order_release);
    function(context, 0, task_count, 0);
    return;
  }

  {
    std::lock_guard<std::mutex> lock(mutex_);
    function_ = function;
    context_ = context;
    task_count_ = task_count;
    chunk_size_ = chunk_size;
    next_task_.store(0, std::memory_order_relaxed);
    participants_ = participants;
    pending_workers_ = participants - 1;
    generation_ += 1;
  }
  start_condition_.notify_all();

  process_chunks(0);

  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_condition_.wait(lock, [&] { return pending_workers_ == 0; });
  }
  busy_.store(false, std::memory_order_release);
}

}  // namespace fcnnzoo
