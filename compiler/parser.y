/* The .lwl grammar. It only builds statements (lists of words, optionally
 * followed by a block); the schema in check.c gives them meaning. Pure and
 * reentrant, with locations, LAC and our own syntax error messages. */
%require "3.8"
%define api.pure full
%define api.prefix {lwlyy}
%define parse.error custom
%define parse.lac full
%define api.header.include {"parser.h"}
%locations
%expect 0
%param {void *scanner}
%parse-param {lwl_parse *P}

%code requires {
#include "ast.h"
}

%code provides {
int lwlyylex(LWLYYSTYPE *yylval, LWLYYLTYPE *yylloc, void *scanner);
}

%code {
#include <string.h>
#define YYSTYPE LWLYYSTYPE
#define YYLTYPE LWLYYLTYPE
#include "lexer.h"

#define YYMAXDEPTH 2000

static lwl_loc yloc(lwl_parse *p, const LWLYYLTYPE *l)
{
    lwl_loc r = { p->src, l->first_line, l->first_column, l->last_line, l->last_column };
    return r;
}

static void lwlyyerror(const LWLYYLTYPE *l, void *scanner, lwl_parse *p, const char *msg)
{
    (void)scanner;
    diag_error(p->diag, yloc(p, l), "%s", msg);
    p->syntax_errors++;
}
}

%union {
    lwl_word *word;
    lwl_stmt *stmt;
    lwl_block *block;
}

%token <word> IDENT "identifier" NUMBER "number" PERCENT "percentage" STRING "string"
%token SEP "end of statement"
%token '{' "'{'" '}' "'}'" '[' "'['" ']' "']'" ',' "','"

%type <word> word scalar list items
%type <stmt> stmt words
%type <block> block stmts

%%

file:
    stmts                       { P->top = $1; }
    ;

/* stmts: statements separated by SEP; empty statements are allowed. After a
 * syntax error, tokens are skipped to the next SEP and the list is kept. */
stmts:
    opt_stmt                    { $$ = arena_alloc(P->arena, sizeof *$$);
                                  if ($<stmt>1) ast_push_stmt(P->arena, &$$->stmts,
                                                              &$$->nstmts, $<stmt>1); }
  | stmts SEP opt_stmt          { $$ = $1;
                                  if ($<stmt>3) ast_push_stmt(P->arena, &$$->stmts,
                                                              &$$->nstmts, $<stmt>3); }
  | stmts error                 { $$ = $1; }
    ;

opt_stmt:
    %empty                      { $<stmt>$ = NULL; }
  | stmt                        { $<stmt>$ = $1; }
    ;

/* stmt: word+ [block] */
stmt:
    words                       { $$ = $1; }
  | words block                 { $$ = $1; $$->block = $2; }
    ;

words:
    word                        { $$ = arena_alloc(P->arena, sizeof *$$);
                                  $$->loc = $1->loc;
                                  ast_push_word(P->arena, &$$->words, &$$->nwords, $1); }
  | words word                  { $$ = $1; $$->loc = loc_join($$->loc, $2->loc);
                                  ast_push_word(P->arena, &$$->words, &$$->nwords, $2); }
    ;

/* block: '{' stmts '}' */
block:
    '{' stmts '}'               { $$ = $2; $$->open = yloc(P, &@1); $$->close = yloc(P, &@3); }
    ;

word:
    scalar
  | list
    ;

scalar:
    IDENT | NUMBER | PERCENT | STRING
    ;

/* list: '[' [scalar (',' scalar)*] ']' */
list:
    '[' ']'                     { $$ = arena_alloc(P->arena, sizeof *$$); $$->kind = W_LIST;
                                  $$->loc = yloc(P, &@$); }
  | '[' items ']'               { $$ = $2; $$->loc = yloc(P, &@$); }
  | '[' items ',' ']'           { $$ = $2; $$->loc = yloc(P, &@$); }
    ;

items:
    scalar                      { $$ = arena_alloc(P->arena, sizeof *$$); $$->kind = W_LIST;
                                  ast_push_word(P->arena, &$$->items, &$$->nitems, $1); }
  | items ',' scalar            { $$ = $1;
                                  ast_push_word(P->arena, &$$->items, &$$->nitems, $3); }
    ;

%%

/* Writes "unexpected X, expected A or B" and, at end of file inside a block,
 * a note naming the opener that was never closed. */
static int yyreport_syntax_error(const yypcontext_t *ctx, void *scanner, lwl_parse *P)
{
    (void)scanner;
    enum { NEXP = 6 };
    yysymbol_kind_t exp[NEXP];
    int n = yypcontext_expected_tokens(ctx, exp, NEXP);
    yysymbol_kind_t got = yypcontext_token(ctx);
    lwl_loc at = yloc(P, yypcontext_location(ctx));
    if (got == YYSYMBOL_YYEOF && at.col > 1)
        at.end_col = at.col;

    char *msg;
    if (got == YYSYMBOL_IDENT || got == YYSYMBOL_NUMBER || got == YYSYMBOL_PERCENT ||
        got == YYSYMBOL_STRING) {
        size_t len = P->tok_len > 40 ? 40 : P->tok_len;
        msg = xasprintf("syntax error: unexpected %s '%.*s%s'", yysymbol_name(got), (int)len,
                        P->src->text + P->tok_start, len < P->tok_len ? "..." : "");
    } else {
        msg = xasprintf("syntax error: unexpected %s", yysymbol_name(got));
    }
    for (int i = 0; i < n && n > 0 && n < NEXP; i++) {
        char *m = xasprintf("%s%s%s", msg, i == 0 ? ", expected " : i == n - 1 ? " or " : ", ",
                            yysymbol_name(exp[i]));
        free(msg);
        msg = m;
    }
    diag_error(P->diag, at, "%s", msg);
    P->syntax_errors++;
    free(msg);
    return 0;
}

lwl_block *ast_parse(lwl_arena *a, lwl_diag *d, const lwl_source *src, int *complete)
{
    lwl_parse p;
    memset(&p, 0, sizeof p);
    p.arena = a;
    p.diag = d;
    p.src = src;
    p.line = 1;
    p.col = 1;

    yyscan_t scanner;
    if (lwlyylex_init_extra(&p, &scanner) != 0) {
        diag_plain(d, "cannot start the lexer");
        return arena_alloc(a, sizeof(lwl_block));
    }
    YY_BUFFER_STATE buf = lwlyy_scan_bytes(src->text, (int)src->len, scanner);
    int rc = lwlyyparse(scanner, &p);
    lwlyy_delete_buffer(buf, scanner);
    lwlyylex_destroy(scanner);
    free(p.opens);

    if (rc == 2)
        diag_plain(d, "%s: nesting too deep", src->path);
    *complete = p.top != NULL && rc == 0;
    if (!p.top)
        p.top = arena_alloc(a, sizeof(lwl_block));
    p.top->open = (lwl_loc){ src, 1, 1, 1, 1 };
    return p.top;
}
