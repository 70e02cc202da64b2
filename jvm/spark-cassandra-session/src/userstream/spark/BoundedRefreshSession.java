package userstream.spark;

import com.datastax.oss.driver.api.core.CqlSession;
import com.datastax.oss.driver.api.core.metadata.Metadata;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A driver session whose {@code refreshSchema()} cannot wedge its caller, and is not paid on every write.
 *
 * <p>The Spark Cassandra connector refreshes the whole schema before every write. The Java driver (4.x, to its
 * latest release) leaves its "refresh in progress" slot taken when a refresh fails at the schema-agreement step,
 * as it does when the node holding the control connection is lost: every later refresh of that session then
 * queues behind it and never runs, and the blocking {@code refreshSchema()} waits uninterruptibly for ever.
 *
 * <p>Here a refresh is waited for at most {@code boundMillis}; a refresh that fails or outlives it leaves the
 * caller with the metadata the session already has, and while one is still pending no other is queued (the
 * session's metadata then stays as it was: our tables are made before the job starts). A refresh within
 * {@code minIntervalMillis} of the last good one is not made: the driver keeps its metadata current from the
 * schema-change events of its control connection, and the forced re-read of every schema table, twice per
 * micro-batch, cost the driver and Cassandra CPU on every batch. Every other call goes to the driver's
 * session as it is (a proxy: the driver's own wrapper class needs annotations it does not ship).
 */
public final class BoundedRefreshSession implements InvocationHandler {
  private static final Logger LOG = LoggerFactory.getLogger(BoundedRefreshSession.class);

  private final CqlSession delegate;
  private final long boundMillis;
  private final long minIntervalNanos;
  private final AtomicReference<CompletableFuture<Metadata>> pending = new AtomicReference<>();
  private volatile long refreshedAt = System.nanoTime(); // a new session has just read the whole schema

  private BoundedRefreshSession(CqlSession delegate, long boundMillis, long minIntervalMillis) {
    this.delegate = delegate;
    this.boundMillis = boundMillis;
    this.minIntervalNanos = TimeUnit.MILLISECONDS.toNanos(minIntervalMillis);
  }

  /** {@code delegate}, with a bounded {@code refreshSchema()} made at most once per {@code minIntervalMillis}. */
  public static CqlSession wrap(CqlSession delegate, long boundMillis, long minIntervalMillis) {
    return (CqlSession) Proxy.newProxyInstance(
        BoundedRefreshSession.class.getClassLoader(),
        new Class<?>[] {CqlSession.class},
        new BoundedRefreshSession(delegate, boundMillis, minIntervalMillis));
  }

  @Override
  public Object invoke(Object proxy, Method method, Object[] args) throws Throwable {
    if (method.getName().equals("refreshSchema") && method.getParameterCount() == 0) {
      return refreshSchema();
    }
    if (method.getDeclaringClass() == Object.class) {
      switch (method.getName()) {
        case "equals":
          return proxy == args[0];
        case "hashCode":
          return System.identityHashCode(proxy);
        case "toString":
          return "BoundedRefreshSession(" + delegate + ")";
        default:
          break;
      }
    }
    try {
      return method.invoke(delegate, args);
    } catch (InvocationTargetException e) {
      throw e.getCause();
    }
  }

  Metadata refreshSchema() {
    if (System.nanoTime() - refreshedAt < minIntervalNanos) {
      return delegate.getMetadata(); // kept current by the driver's schema events
    }
    CompletableFuture<Metadata> mine = new CompletableFuture<>();
    CompletableFuture<Metadata> current = pending.updateAndGet(f -> f == null || f.isDone() ? mine : f);
    if (current != mine) {
      return delegate.getMetadata(); // a refresh still pending may never end: do not queue another behind it
    }
    delegate.refreshSchemaAsync().whenComplete((metadata, error) -> {
      if (error != null) {
        mine.completeExceptionally(error);
      } else {
        refreshedAt = System.nanoTime();
        mine.complete(metadata);
      }
    });
    try {
      return mine.get(boundMillis, TimeUnit.MILLISECONDS);
    } catch (TimeoutException e) {
      LOG.warn("schema refresh unanswered after {} ms: using the session's metadata", boundMillis);
    } catch (ExecutionException e) {
      LOG.warn("schema refresh failed ({}): using the session's metadata", String.valueOf(e.getCause()));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    return delegate.getMetadata();
  }
}
