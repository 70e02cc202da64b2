package userstream.spark;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.MessageDigest;
import java.util.Base64;
import javax.servlet.Filter;
import javax.servlet.FilterChain;
import javax.servlet.FilterConfig;
import javax.servlet.ServletException;
import javax.servlet.ServletRequest;
import javax.servlet.ServletResponse;
import javax.servlet.http.HttpServletRequest;
import javax.servlet.http.HttpServletRequestWrapper;
import javax.servlet.http.HttpServletResponse;

/**
 * HTTP Basic login for Spark's web UIs (master, worker, driver), which have none of their own.
 *
 * <p>Installed with {@code spark.ui.filters userstream.spark.BasicAuthFilter} and
 * {@code spark.userstream.spark.BasicAuthFilter.param.credentialsFile <file>}; the file holds one
 * {@code user:password} line. Spark 3.5 ships the javax servlet API (jakarta.servlet-api 4.x still uses
 * the javax package), so this is a javax filter.
 */
public final class BasicAuthFilter implements Filter {
    static final String REALM = "userstream spark";

    // the expected "user:password" as bytes: what a Basic header decodes to
    private byte[] expected;
    private String user;

    @Override
    public void init(FilterConfig config) throws ServletException {
        String file = config.getInitParameter("credentialsFile");
        if (file == null || file.isBlank()) {
            // no credentials must mean no UI, never an open one
            throw new ServletException("BasicAuthFilter: init param credentialsFile is not set (spark."
                    + BasicAuthFilter.class.getName() + ".param.credentialsFile)");
        }
        Path path = Paths.get(file);
        String text;
        try {
            // read once: the password is not passed on a command line or in the Spark conf, only the file's name
            text = Files.readString(path, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new ServletException("BasicAuthFilter: credentials file " + path + " does not exist");
        } catch (IOException e) {
            throw new ServletException("BasicAuthFilter: cannot read credentials file " + path + ": " + e, e);
        }
        String line = text.strip();
        int colon = line.indexOf(':');
        if (colon <= 0 || colon == line.length() - 1 || line.contains("\n")) {
            throw new ServletException("BasicAuthFilter: " + path + " must hold one line user:password");
        }
        user = line.substring(0, colon);
        expected = line.getBytes(StandardCharsets.UTF_8);
    }

    @Override
    public void doFilter(ServletRequest req, ServletResponse resp, FilterChain chain)
            throws IOException, ServletException {
        if (!(req instanceof HttpServletRequest) || !(resp instanceof HttpServletResponse)) {
            throw new ServletException("BasicAuthFilter: not an HTTP request");
        }
        HttpServletRequest request = (HttpServletRequest) req;
        HttpServletResponse response = (HttpServletResponse) resp;
        if (!authorized(request.getHeader("Authorization"))) {
            response.setHeader("WWW-Authenticate", "Basic realm=\"" + REALM + "\"");
            response.sendError(HttpServletResponse.SC_UNAUTHORIZED);
            return;
        }
        // Spark's own ACLs (spark.acls.enable) read the user from getRemoteUser: give it the one logged in
        chain.doFilter(new HttpServletRequestWrapper(request) {
            @Override
            public String getRemoteUser() {
                return user;
            }
        }, response);
    }

    private boolean authorized(String header) {
        if (header == null || header.length() < 6 || !header.regionMatches(true, 0, "Basic ", 0, 6)) {
            return false;
        }
        byte[] given;
        try {
            given = Base64.getDecoder().decode(header.substring(6).trim());
        } catch (IllegalArgumentException e) {
            return false;
        }
        // constant time: isEqual's running time depends only on the length of its first argument (ours),
        // so neither the content nor the length of a guess can be learnt from how fast it is refused
        return MessageDigest.isEqual(expected, given);
    }

    @Override
    public void destroy() {
        expected = null;
    }
}
